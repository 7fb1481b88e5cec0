"""Nobody on duty: the customer leaves a message (留言) and gets a due time that is kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import BusinessConfig, Config, TicketConfig
from bot.hours import BusinessHours
from bot.store import TicketStatus
from handoff.offline import due_time, extract_contact, is_skip
from tests.harness import Kefu

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS_9_TO_6 = BusinessHours(BusinessConfig.model_validate({
    "hours": {"mon": "09:00-18:00", "tue": "09:00-18:00", "wed": "09:00-18:00",
              "thu": "09:00-18:00", "fri": "09:00-18:00", "sat": "closed", "sun": "closed"},
    "holidays": ["2026-10-01"],
}))
TICKETS = TicketConfig()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize(("left", "due"), [
    ("2026-11-25 14:20", "2026-11-25 15:20"),  # Wednesday afternoon: within the hour
    ("2026-11-25 17:30", "2026-11-25 18:30"),  # late in the day: still an hour
    ("2026-11-25 22:10", "2026-11-26 10:00"),  # overnight: 10:00 next working day
    ("2026-11-26 07:45", "2026-11-26 10:00"),  # before opening: 10:00 the same day
    ("2026-11-27 19:00", "2026-11-30 10:00"),  # Friday evening: Monday 10:00
    ("2026-11-28 11:00", "2026-11-30 10:00"),  # Saturday: Monday
    ("2026-09-30 20:00", "2026-10-02 10:00"),  # the holiday is skipped
])
def test_due_times_across_business_hours_and_overnight(left: str, due: str) -> None:
    assert due_time(at(left), WEEKDAYS_9_TO_6, TICKETS) == at(due)


def test_overnight_due_is_never_before_opening() -> None:
    late_opening = BusinessHours(BusinessConfig.model_validate(
        {"hours": {d: "11:00-20:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat",
                                               "sun")}}))
    assert due_time(at("2026-11-25 23:00"), late_opening, TICKETS) == at("2026-11-26 11:00")
    earlier = TicketConfig(overnight_due=time(12, 30), due_within_seconds=1800)
    assert due_time(at("2026-11-25 23:00"), late_opening, earlier) == at("2026-11-26 12:30")
    assert due_time(at("2026-11-25 15:00"), late_opening, earlier) == at("2026-11-25 15:30")


@pytest.mark.parametrize(("text", "contact"), [
    ("我的手机 13812345678，麻烦回电", "13812345678"),
    ("电话 +86 138-1234-5678", "+86 138-1234-5678"),
    ("mail me at li.lei@example.com please", "li.lei@example.com"),
    ("座机 010-62345678", "010-62345678"),
    ("订单 12345 还没发货", None),
    ("2026-11-25 下的单", None),
])
def test_contact_details_are_found_in_what_the_customer_typed(
    text: str, contact: str | None
) -> None:
    assert extract_contact(text) == contact


def test_skip_words() -> None:
    assert is_skip("跳过") and is_skip("Skip.") and not is_skip("跳过这个问题怎么办")


async def test_no_agent_online_in_business_hours_takes_a_message_due_within_the_hour(
    make_config: Callable[..., Config],
) -> None:
    kefu = await Kefu(make_config()).start()  # always open, nobody online
    try:
        agent = await kefu.add_agent("later")
        customer = await kefu.visitor()
        replies = await customer.say("转人工")
        assert [r["kind"] for r in replies] == ["greeting", "offline"]
        assert "暂时没有客服在线" in replies[1]["text"] and "请留言" in replies[1]["text"]
        (ask,) = await customer.say("我买的耳机左边没声音，想换一个")
        assert ask["kind"] == "offline" and "手机号或邮箱" in ask["text"]
        (confirm,) = await customer.say("13812345678")
        (ticket,) = await kefu.store.tickets(TicketStatus.OPEN)
        assert ticket.question == "我买的耳机左边没声音，想换一个"
        assert ticket.contact == "13812345678"
        assert ticket.due_at - ticket.created_at == pytest.approx(3600)
        assert ticket.id in confirm["text"] and "13812345678" in confirm["text"]
        # Back to the bot for anything else.
        assert (await customer.say("退货怎么办"))[0]["kind"] == "answer"

        console = await kefu.agent("later")
        (listed,) = await console.get("/tickets")
        assert (listed["id"], listed["overdue"]) == (ticket.id, False)
        done = await console.post(f"/tickets/{ticket.id}/done", {"note": "已电话联系，换货"})
        assert done["status"] == "done"
        assert await console.get("/tickets") == []
        stored = await kefu.store.get_ticket(ticket.id)
        assert stored is not None and stored.done_by == agent.id
        again = await console.post(f"/tickets/{ticket.id}/done", {}, status=409)
        assert again["error"] == "already_done"
    finally:
        await kefu.stop()


async def test_outside_hours_the_message_is_due_at_ten_next_working_day(
    make_config: Callable[..., Config],
) -> None:
    today = datetime.now(SHANGHAI).date()
    kefu = await Kefu(make_config(business={"holidays": [today.isoformat()]})).start()
    try:
        await kefu.add_agent("night", online=True)  # online, but the desk is closed today
        customer = await kefu.visitor()
        await customer.say("我要投诉")
        (ask,) = await customer.say("发票开错了抬头，请帮忙重开")
        assert ask["kind"] == "offline"
        (confirm,) = await customer.say("跳过")
        (ticket,) = await kefu.store.tickets()
        due = datetime.fromtimestamp(ticket.due_at, SHANGHAI)
        assert due == datetime.combine(today + timedelta(days=1), time(10, 0), SHANGHAI)
        assert ticket.contact == "" and ticket.question == "发票开错了抬头，请帮忙重开"
        assert "明天 10:00" in confirm["text"] and "回复会发在这里" in confirm["text"]
        conversation = await kefu.store.get_conversation(ticket.conversation_id)
        assert conversation is not None and conversation.handoff_reason == "complaint"
    finally:
        await kefu.stop()


async def test_queued_customers_are_offered_a_message_when_the_last_agent_leaves(
    make_config: Callable[..., Config],
) -> None:
    kefu = await Kefu(make_config(desk={"tick_seconds": 0.05, "auto_assign": False})).start()
    try:
        await kefu.add_agent("last", online=True)
        customer = await kefu.visitor()
        await customer.say("转人工")
        agent = await kefu.agent("last")
        await agent.post("/presence", {"presence": "offline"})
        offer = await customer.receive_until("message")
        assert offer[-1]["kind"] == "offline"
        assert customer.states[-1]["state"] == "bot"
    finally:
        await kefu.stop()


async def test_a_customer_may_decide_not_to_leave_a_message(
    make_config: Callable[..., Config],
) -> None:
    kefu = await Kefu(make_config()).start()
    try:
        customer = await kefu.visitor()
        await customer.say("转人工")
        (cancelled,) = await customer.say("算了")
        assert cancelled["kind"] == "offline" and "不留言" in cancelled["text"]
        assert await kefu.store.tickets() == []
        assert (await customer.say("退货怎么办"))[0]["kind"] == "answer"
    finally:
        await kefu.stop()


# 2026's Spring Festival: Sunday 15 to Monday 23 February off; Saturday 14 and Saturday 28
# February worked instead (调休).
SPRING_FESTIVAL = {"holidays": [f"2026-02-{d}" for d in range(15, 24)],
                   "workdays": ["2026-02-14", "2026-02-28"]}


@pytest.mark.parametrize("source", ["lists", "calendar"])
@pytest.mark.parametrize(("left", "due"), [
    ("2026-02-13 20:00", "2026-02-14 10:00"),  # Friday evening: the make-up Saturday
    ("2026-02-14 14:00", "2026-02-14 15:00"),  # on the make-up Saturday: within the hour
    ("2026-02-14 19:00", "2026-02-24 10:00"),  # then the whole holiday is skipped
    ("2026-02-27 19:00", "2026-02-28 10:00"),  # and the second make-up Saturday is worked
])
def test_make_up_working_days_are_worked(source: str, left: str, due: str) -> None:
    week = {"mon": "09:00-18:00", "tue": "09:00-18:00", "wed": "09:00-18:00",
            "thu": "09:00-18:00", "fri": "09:00-18:00", "sat": "closed", "sun": "closed"}
    days = SPRING_FESTIVAL if source == "lists" else {"calendar": "china"}
    hours = BusinessHours(BusinessConfig.model_validate({"hours": week, **days}))
    assert due_time(at(left), hours, TICKETS) == at(due)


def test_a_make_up_day_has_its_own_hours_if_given() -> None:
    hours = BusinessHours(BusinessConfig.model_validate({
        "hours": {"mon": "09:00-18:00", "sun": "closed"}, "workdays": ["2026-09-27"],
        "workday_hours": "10:00-16:00"}))
    assert not hours.is_open(at("2026-09-27 09:30"))  # a Sunday worked, from 10:00
    assert hours.is_open(at("2026-09-27 15:59"))
    assert hours.next_opening(at("2026-09-26 12:00")) == at("2026-09-27 10:00")
