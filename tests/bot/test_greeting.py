"""What the greeting says: time of day, and when people are back outside business hours."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.config import Config
from bot.errors import ConfigError
from bot.greeting import Greeter
from bot.hours import BusinessHours
from tests.harness import Kefu

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS_9_TO_6 = {"hours": {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}}


def at(*args: int) -> float:
    return datetime(*args, tzinfo=SHANGHAI).timestamp()


@pytest.fixture
def greeter(make_config: Callable[..., Config]) -> Greeter:
    config = make_config(business=WEEKDAYS_9_TO_6)
    return Greeter(config, BusinessHours(config.business))


@pytest.mark.parametrize(
    ("moment", "lang", "expected"),
    [((2026, 11, 23, 8, 30), "zh", "早上好"), ((2026, 11, 23, 12, 0), "zh", "中午好"),
     ((2026, 11, 23, 15, 0), "zh", "下午好"), ((2026, 11, 23, 20, 0), "zh", "晚上好"),
     ((2026, 11, 23, 8, 30), "en", "Good morning"), ((2026, 11, 23, 15, 0), "en",
                                                     "Good afternoon"),
     ((2026, 11, 24, 3, 0), "zh", "您好"), ((2026, 11, 24, 3, 0), "en", "Hello")],
)
def test_time_of_day(greeter: Greeter, moment: tuple[int, ...], lang: str, expected: str) -> None:
    assert greeter.render(lang, at(*moment)).startswith(expected)


def test_open_hours_say_nothing_about_being_closed(greeter: Greeter) -> None:
    assert "上班" not in greeter.render("zh", at(2026, 11, 23, 10, 0))  # Monday 10:00


@pytest.mark.parametrize(
    ("moment", "back_zh", "back_en"),
    [((2026, 11, 23, 20, 0), "明天 09:00", "tomorrow at 09:00"),  # Monday evening
     ((2026, 11, 24, 7, 0), "今天 09:00", "today at 09:00"),  # Tuesday early
     ((2026, 11, 27, 19, 0), "周一 09:00", "Monday at 09:00")],  # Friday evening
)
def test_outside_hours_says_when_people_are_back(
    greeter: Greeter, moment: tuple[int, ...], back_zh: str, back_en: str
) -> None:
    assert f"人工客服{back_zh}上班" in greeter.render("zh", at(*moment))
    assert f"back {back_en}" in greeter.render("en", at(*moment))


def test_broken_greeting_template_stops_start_up(make_config: Callable[..., Config]) -> None:
    config = make_config(greeting={"templates": {"zh": "{{ no_such_variable }}"}})
    with pytest.raises(ConfigError, match=r"greeting\.templates\.zh"):
        Greeter(config, BusinessHours(config.business))


async def test_handoff_outside_hours_says_when_people_are_back(
    make_config: Callable[..., Config],
) -> None:
    kefu = await Kefu(make_config(business={"hours": {}})).start()  # never staffed
    try:
        visitor = await kefu.visitor()
        replies = await visitor.say("转人工")
        assert [r["kind"] for r in replies] == ["greeting", "offline"]
        assert "现在是非工作时间" in replies[1]["text"]
        assert "请留言" in replies[1]["text"]
    finally:
        await kefu.stop()


async def test_the_greeting_sent_first_is_the_one_in_the_transcript(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    greeting, _ = await visitor.say("退货怎么办")
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    said = await kefu.store.messages(conversation.id)
    assert [(m.seq, m.kind.value) for m in said] == [(1, "text"), (2, "greeting"),
                                                     (3, "answer")]
    assert (greeting["seq"], greeting["id"]) == (said[1].seq, said[1].id)  # as sent
    opener = await kefu.visitor()
    (hello,) = await opener.open()
    opened = await kefu.store.latest_conversation("webchat", opener.id)
    assert opened is not None
    (stored,) = await kefu.store.messages(opened.id)
    assert (hello["seq"], hello["id"]) == (stored.seq, stored.id) == (1, stored.id)


def test_the_greeting_knows_make_up_working_days(make_config: Callable[..., Config]) -> None:
    config = make_config(business={
        "hours": {"mon": "09:00-18:00", "sat": "closed", "sun": "closed"},
        "workdays": ["2026-02-14"]})  # a Saturday worked for the Spring Festival
    greeter = Greeter(config, BusinessHours(config.business))
    zone = ZoneInfo(config.business.timezone)
    friday_night = datetime(2026, 2, 13, 21, 0, tzinfo=zone).timestamp()
    assert "人工客服明天 09:00上班" in greeter.render("zh", friday_night)
    saturday = datetime(2026, 2, 14, 10, 0, tzinfo=zone).timestamp()
    assert "上班" not in greeter.render("zh", saturday)  # open: nothing about being closed
