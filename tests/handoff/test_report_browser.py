"""The report in a real browser: a supervisor opens it from the console and sees the charts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import AgentRole
from tests.browser import log_in, skip_without_chromium, url
from tests.handoff.report_seed import WEEK, generate, seed
from tests.harness import Kefu

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402


async def supervisor_opens_reports(browser: Browser, kefu: Kefu) -> Page:
    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR)
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    console = await context.new_page()
    await log_in(console, kefu, "boss", "supervisor")
    async with context.expect_page() as opened:
        await console.get_by_role("link", name="报表").click()
    report = await opened.value
    await expect(report.locator("h1")).to_contain_text("kefu 报表")  # the console's language
    return report


async def test_supervisor_sees_the_weeks_charts(kefu: Kefu, browser: Browser,
                                               tmp_path: Path) -> None:
    await seed(kefu.store, generate())
    report = await supervisor_opens_reports(browser, kefu)
    await report.get_by_label("开始日期").fill(WEEK.first.isoformat())
    await report.get_by_label("结束日期").fill(WEEK.last.isoformat())
    await report.get_by_role("button", name="查看").click()
    await expect(report.locator("h1")).to_have_text("kefu 报表 2026-11-02 – 2026-11-08")
    await expect(report.locator("h2").first).to_have_text("概览")

    charts = report.locator("figure svg")
    await expect(charts).to_have_count(5)
    # channels as agents call them, in the page's language
    await expect(charts.first).to_contain_text("网页")
    await expect(charts.first).not_to_contain_text("webchat")
    by_day = charts.first
    box = await by_day.bounding_box()
    assert box is not None and box["width"] > 500 and box["height"] > 150
    # seven days of stacked bars: every day has conversations on some channel
    assert await by_day.locator("rect[fill]:not([width='12'])").count() >= 7
    shot = tmp_path / "report.png"
    await report.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    # The bars are what the picture shows: without them the chart looks different.
    figure = report.locator("figure").first
    with_bars = await figure.screenshot()
    await report.add_style_tag(content="figure rect { display: none }")
    assert await figure.screenshot() != with_bars

    await report.get_by_role("link", name="English").click()
    await expect(report.locator("h1")).to_have_text("kefu report 2026-11-02 – 2026-11-08")
    await expect(report.locator("h2").first).to_have_text("Summary")
    await expect(report.locator(".made")).to_contain_text("(Asia/Shanghai)")
    await expect(report.get_by_label("From")).to_have_value(WEEK.first.isoformat())
    await expect(report.get_by_role("button", name="Show")).to_be_visible()
    await expect(report.locator("figure svg").first).to_contain_text("Web chat")


async def test_agents_are_not_shown_reports(kefu: Kefu, browser: Browser) -> None:
    page = await browser.new_page()
    await log_in(page, kefu, "duty")
    await expect(page.get_by_role("link", name="报表")).to_be_hidden()
    response = await page.goto(url(kefu, "/agent/report"))
    assert response is not None and response.status == 403
