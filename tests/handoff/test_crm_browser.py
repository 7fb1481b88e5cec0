"""The customer record beside the transcript, and a complaint case, in a real browser."""

from __future__ import annotations

import pytest

from tests.browser import log_in, skip_without_chromium
from tests.harness import Kefu

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402


async def agent_logs_in(browser: Browser, kefu: Kefu, answers: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})

    async def answer(dialog: object) -> None:
        await dialog.accept(answers.pop(0) if answers else "")  # type: ignore[attr-defined]

    page.on("dialog", answer)
    await log_in(page, kefu, "duty")
    return page


async def test_agent_sees_and_keeps_the_record_and_works_the_complaint(
        kefu: Kefu, browser: Browser) -> None:
    await kefu.queued_customer("我要投诉，快递三天没动，电话 138-1234-5678")
    answers = ["已补发，顺丰单号 SF123", "客户说还没收到"]
    page = await agent_logs_in(browser, kefu, answers)

    await page.get_by_role("tab", name="待接入").click()
    await page.locator("#inbox li").first.click()
    box = page.locator("#customer-box")
    await expect(box.locator("#customer-contacts")).to_contain_text("13812345678")
    await page.get_by_label("姓名 Name").fill("李女士")
    await page.get_by_label("标签 Tags").fill("vip, 大客户")
    await page.get_by_label("备注 Note").fill("需要开专票")
    await box.get_by_role("button", name="保存 Save").click()
    await expect(page.locator("#customer-name")).to_have_text("李女士")
    await expect(page.locator("#customer-tags")).to_have_text("· vip, 大客户")
    await expect(page.locator("#customer-notes li")).to_contain_text("duty: 需要开专票")
    await expect(box.locator("#customer-cases")).to_contain_text("我要投诉")

    await page.locator("summary", has_text="投诉").click()
    cases = page.locator("#cases li")
    await expect(cases).to_have_count(1)
    await cases.first.click()
    view = page.locator("#case-view")
    await expect(view.locator("#case-summary")).to_have_text(
        "我要投诉，快递三天没动，电话 138-1234-5678")
    await view.get_by_role("button", name="调查中 Investigate").click()
    await expect(view.locator("#case-title")).to_contain_text("investigating")
    await view.get_by_role("button", name="已解决 Resolve").click()
    await expect(view.locator("#case-title")).to_contain_text("resolved")
    await expect(view.locator("#case-info")).to_contain_text("回访 follow-up due")
    await view.get_by_role("button", name="回访：不满意 Not satisfied").click()
    await expect(view.locator("#case-title")).to_contain_text("open")
    timeline = view.locator("#case-timeline li")
    await expect(timeline).to_have_count(4)
    await expect(timeline.nth(2)).to_contain_text("resolved: 已补发，顺丰单号 SF123")
    await expect(timeline.nth(3)).to_contain_text("not satisfied, reopened: 客户说还没收到")
    record = await kefu.store.customers()
    assert [(c.name, c.tags) for c in record] == [("李女士", ("vip", "大客户"))]
