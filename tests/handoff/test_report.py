"""`kefu report`: a generated week in the store, and every figure checked exactly."""

from __future__ import annotations

import csv
import io
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import Config
from bot.store import AgentRole, Store
from bot.store.sqlite import SqliteStore
from handoff.report import Period, Report, make_report
from handoff.report_view import as_csv, as_html, as_markdown
from tests.handoff.report_seed import AGENTS, NOW, SHANGHAI, UNANSWERED, WEEK, Week, generate, seed
from tests.harness import Kefu
from tests.test_cli import KEFU

CONFIG = Config()


async def seeded_report(store: Store) -> tuple[Week, Report]:
    week = generate()
    await seed(store, week)
    return week, await make_report(store, WEEK, CONFIG, now=NOW)


def test_the_generated_week_covers_every_rule() -> None:
    declared = generate().declared
    assert {d.outcome for d in declared} == {"bot_answered", "handed_off", "unanswered"}
    assert {d.ticket for d in declared} >= {"on_time", "late", "overdue", "waiting"}
    assert {d.channel for d in declared} == {"webchat", "wechat", "telegram"}
    assert any(d.greeting_late_cause for d in declared)
    assert sum(sum(d.breaches.values()) for d in declared) > 0  # the 1-minute rule
    assert any(len(d.held_by) > 1 for d in declared)  # transfers
    assert any(d.abandoned for d in declared) and any(d.still_queued for d in declared)
    assert any(d.repeat_complaint for d in declared)
    assert {d.rating for d in declared} >= {1, 3, 4, 5, None}
    assert {d.unanswered for d in declared} >= set(UNANSWERED)
    assert len(generate().talks) > len(declared)  # some fall outside the week


async def test_every_figure_is_what_the_week_adds_up_to(store: Store) -> None:
    week, report = await seeded_report(store)
    declared = week.declared

    days = {day: Counter[str]() for day in WEEK.days()}
    for d in declared:
        days[d.day][d.channel] += 1
    assert report.by_day == days
    assert report.conversations == len(declared)
    assert report.outcomes == Counter(d.outcome for d in declared)

    greetings = sorted(d.greeting_s for d in declared if d.greeting_s is not None)
    assert list(report.greeting.values) == greetings
    assert report.greeting_compliance == sum(g <= 5 for g in greetings) / len(greetings)
    assert report.greeting_breaches == Counter(
        d.greeting_late_cause for d in declared if d.greeting_late_cause)

    assert report.customer_messages == sum(d.customer_messages for d in declared)
    assert report.answered_within_minute == sum(d.answered_within for d in declared)
    assert list(report.first_response.values) == sorted(
        d.first_response[1] for d in declared if d.first_response)
    assert list(report.queue_waits.values) == sorted(
        d.queue_wait for d in declared if d.queue_wait is not None)
    assert report.abandoned == sum(d.abandoned for d in declared)
    assert report.still_queued == sum(d.still_queued for d in declared) == 1

    fates = Counter(d.ticket for d in declared if d.ticket)
    t = report.tickets
    assert (t.left, t.on_time, t.late, t.overdue, t.waiting) == (
        sum(fates.values()), fates["on_time"], fates["late"], fates["overdue"], fates["waiting"])

    assert report.complaints == sum(d.complaint for d in declared)
    assert report.repeat_complaints == sum(d.repeat_complaint for d in declared) == 2
    assert report.ratings == Counter(d.rating for d in declared if d.rating)
    assert report.rating_requests == sum(d.rating_requested for d in declared)

    by_agent = {a.name: a for a in report.agents}
    assert set(by_agent) == set(AGENTS.values())
    for agent_id, name in AGENTS.items():
        figures = by_agent[name]
        assert figures.chats == sum(d.held_by.count(agent_id) for d in declared)
        assert figures.replies == sum(d.replies[agent_id] for d in declared)
        assert sorted(figures.first_responses) == sorted(
            d.first_response[1] for d in declared
            if d.first_response and d.first_response[0] == agent_id)
        assert figures.reply_breaches == sum(d.breaches[agent_id] for d in declared)
        assert figures.closed == sum(d.closed_by == agent_id for d in declared)
        assert sorted(figures.ratings) == sorted(
            d.rating for d in declared if d.closed_by == agent_id and d.rating)

    asked = Counter(d.unanswered for d in declared if d.unanswered)
    assert [n for n, _, _ in report.unanswered] == sorted(asked.values(), reverse=True)
    for n, example, others in report.unanswered:
        (group,) = [g for g, wordings in UNANSWERED.items() if example in wordings]
        assert n == asked[group]  # paraphrases counted together, other questions apart
        assert set(others) <= set(UNANSWERED[group])


async def test_a_conversation_counts_on_its_day_in_the_business_time_zone(store: Store
                                                                          ) -> None:
    week, _ = await seeded_report(store)
    # 2026-11-02 00:30 in Shanghai is still 1 November in UTC: it belongs to the 2nd.
    first_day = await make_report(store, Period(WEEK.first, WEEK.first, SHANGHAI), CONFIG,
                                  now=NOW)
    declared_first = [d for d in week.declared if d.day == WEEK.first]
    assert first_day.conversations == len(declared_first)
    assert first_day.complaints == sum(d.complaint for d in declared_first)
    assert first_day.repeat_complaints == 1  # against the complaint of the evening before


async def test_formats_print_the_same_figures(store: Store) -> None:
    _, report = await seeded_report(store)
    compliance = f"{report.greeting_compliance * 100:.1f}%"  # type: ignore[operator]
    within = f"{report.within_minute_share * 100:.1f}%"  # type: ignore[operator]

    rows = list(csv.DictReader(io.StringIO(as_csv(report))))
    value = {(r["section"], r["row"], r["column"]): r["value"] for r in rows}
    assert value[("Summary", "conversations", "value")] == str(report.conversations)
    assert value[("Summary", "greeted within 5 s", "value")] == compliance
    assert value[("Summary", "customer messages answered within 1 min", "value")] == within
    day = WEEK.first.isoformat()
    assert value[("Conversations by day and channel", day, "wechat")] == str(
        report.by_day[WEEK.first]["wechat"])
    assert value[("Satisfaction", "★★★★★", "ratings")] == str(report.ratings[5])

    markdown = as_markdown(report)
    assert f"| greeted within 5 s | {compliance} |" in markdown
    assert f"| conversations | {report.conversations} |" in markdown

    html = as_html(report)
    assert html.count("<svg") == 5  # by day, outcomes, greeting, queue, satisfaction
    assert f"<td>greeted within 5 s</td><td>{compliance}</td>" in html


async def test_customer_text_in_the_report_is_not_html(store: Store) -> None:
    from bot.store import UnansweredQuestion

    await store.record_unanswered(UnansweredQuestion(
        "c1", "<script>alert(1)</script> 在吗", None, None, WEEK.since + 3600))
    html = as_html(await make_report(store, WEEK, CONFIG, now=NOW))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 在吗" in html


def test_periods_read_as_people_type_them() -> None:
    week = Period.parse("2026-11-02", "2026-11-08", SHANGHAI, NOW, 366)
    assert week == WEEK
    assert week.until - week.since == 7 * 86400
    default = Period.parse(None, None, SHANGHAI, NOW, 366)
    assert (default.first.isoformat(), default.last.isoformat()) == ("2026-11-02",
                                                                     "2026-11-08")
    with pytest.raises(ValueError, match="not a date like 2026-11-01"):
        Period.parse("11/02/2026", None, SHANGHAI, NOW, 366)
    with pytest.raises(ValueError, match=r"ends .* before it begins"):
        Period.parse("2026-11-08", "2026-11-02", SHANGHAI, NOW, 366)
    with pytest.raises(ValueError, match="at most 31"):
        Period.parse("2026-01-01", "2026-11-08", SHANGHAI, NOW, 31)


async def test_the_report_reads_what_a_real_escalation_wrote(
        make_config: Callable[..., Config]) -> None:
    config = make_config(desk={"auto_assign": False})
    kefu = await Kefu(config).start()
    try:
        await kefu.add_agent("alice", online=True)
        answered = await kefu.visitor()
        await answered.open()
        assert [r["kind"] for r in await answered.say("退货怎么办")] == ["answer"]
        customer, conversation_id = await kefu.queued_customer("转人工")
        alice = await kefu.agent("alice")
        await alice.act(conversation_id, "take")
        await alice.act(conversation_id, "reply", text="您好，我是 alice，这就帮您处理。")
        await alice.act(conversation_id, "close")
        await customer.settle()
        assert [r["kind"] for r in await customer.say("5 非常满意")] == ["rating_thanks"]

        now = time.time()
        week = Period.parse(None, None, ZoneInfo(config.business.timezone), now, 7)
        report = await make_report(kefu.store, week, config, now=now)
    finally:
        await kefu.stop()
    assert report.conversations == 2
    assert report.outcomes == Counter({"bot_answered": 1, "handed_off": 1})
    assert report.greeting.count == 2 and report.greeting_compliance == 1.0
    # the question, "转人工" and the rating: each had its reply at once
    assert (report.customer_messages, report.answered_within_minute) == (3, 3)
    assert report.queue_waits.count == 1 and report.abandoned == 0
    assert report.first_response.count == 1
    assert (report.ratings[5], report.rating_requests) == (1, 1)
    (figures,) = report.agents
    assert (figures.name, figures.chats, figures.replies, figures.closed, figures.ratings) == (
        "alice", 1, 1, 1, [5])


async def test_kefu_report_writes_the_format_its_file_asks_for(tmp_path: Path) -> None:
    path = tmp_path / "kefu.sqlite3"
    store = await SqliteStore.open(path)
    week = generate()
    await seed(store, week)
    await store.close()
    config = tmp_path / "config.yaml"
    config.write_text(f"store:\n  path: {path}\n", encoding="utf-8")

    def kefu_report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KEFU, "--config", str(config), "report", *args],
                              capture_output=True, text=True, timeout=60)

    made = kefu_report("--from", "2026-11-02", "--to", "2026-11-08", "-o",
                       str(tmp_path / "week.html"))
    assert made.returncode == 0, made.stderr
    conversations = len(week.declared)
    assert f"week.html: html report, {conversations} conversations" in made.stderr
    assert (tmp_path / "week.html").read_text(encoding="utf-8").count("<svg") == 5
    as_csv_too = kefu_report("--from", "2026-11-02", "--to", "2026-11-08", "-o",
                             str(tmp_path / "week.csv"))
    assert as_csv_too.returncode == 0, as_csv_too.stderr
    assert (tmp_path / "week.csv").read_text(encoding="utf-8").startswith(
        "section,row,column,value\nSummary,conversations,value," + str(conversations))
    printed = kefu_report("--from", "2026-11-02", "--to", "2026-11-08")
    assert f"| conversations | {conversations} |" in printed.stdout

    wrong = kefu_report("--from", "02/11/2026")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().endswith("--from '02/11/2026' is not a date like 2026-11-01")


async def test_the_console_serves_reports_to_supervisors_only(kefu: Kefu) -> None:
    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR)
    boss, duty = await kefu.agent("boss"), await kefu.agent("duty")
    assert kefu.client is not None
    page = await kefu.client.get("/agent/report", headers=boss.headers,
                                 params={"from": "2026-11-02", "to": "2026-11-08"})
    assert page.status == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "<h1>kefu 报表 2026-11-02 – 2026-11-08</h1>" in await page.text()  # boss's zh
    english = await kefu.client.get("/agent/report", headers=boss.headers, params={
        "from": "2026-11-02", "to": "2026-11-08", "lang": "en"})
    assert "<h1>kefu report 2026-11-02 – 2026-11-08</h1>" in await english.text()
    wrong = await kefu.client.get("/agent/report", headers=boss.headers, params={"lang": "fr"})
    assert wrong.status == 400
    table = await kefu.client.get("/agent/report", headers=boss.headers,
                                  params={"format": "csv", "from": "2026-11-02"})
    assert table.status == 200 and table.content_type == "text/csv"
    assert "attachment" in table.headers["Content-Disposition"]
    refused = await kefu.client.get("/agent/report", headers=duty.headers)
    assert refused.status == 403
    assert (await refused.json())["error"] == "supervisors_only"
    wrong = await kefu.client.get("/agent/report", headers=boss.headers,
                                  params={"from": "2026-11-09", "to": "2026-11-02"})
    assert wrong.status == 400
    assert "before it begins" in (await wrong.json())["message"]


async def test_where_customers_came_from_is_counted(store: Store) -> None:
    await seed(store, generate())
    begun = [c for c in await store.conversations_created(WEEK.since, WEEK.until)
             if c.channel == "telegram"]
    for conversation, source in zip(begun, ("poster", "poster", "newsletter"), strict=False):
        await store.save_conversation(replace(conversation, source=source))
    report = await make_report(store, WEEK, CONFIG, now=NOW)
    assert report.sources == Counter({"poster": 2, "newsletter": 1})
    text = as_markdown(report)
    assert "## Where customers came from" in text
    assert "| poster | 2 |" in text and "| newsletter | 1 |" in text
