"""The customer record beside the transcript, and a complaint case, in a real browser."""

from __future__ import annotations

import pytest

from tests.browser import log_in, skip_without_chromium
from tests.harness import Kefu

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402


async def agent_logs_in(browser: Browser, kefu: Kefu, dialogs: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))  # the browser's own
    await log_in(page, kefu, "duty")
    return page


async def answer(page: Page, text: str, button: str) -> None:
    """The console's own question box: type the answer, press its button."""
    ask = page.locator("dialog#ask")
    await expect(ask).to_be_visible()
    await ask.locator("textarea, input").fill(text)
    await ask.get_by_role("button", name=button, exact=True).click()
    await expect(ask).to_be_hidden()


async def test_agent_sees_and_keeps_the_record_and_works_the_complaint(
        kefu: Kefu, browser: Browser) -> None:
    await kefu.queued_customer("我要投诉，快递三天没动，电话 138-1234-5678")
    dialogs: list[str] = []
    page = await agent_logs_in(browser, kefu, dialogs)

    await page.get_by_role("tab", name="待接入").click()
    await page.locator("#inbox li").first.click()
    box = page.locator("#customer-box")
    await expect(box.locator("#customer-contacts")).to_contain_text("13812345678")
    await expect(box.locator("#customer-facts")).to_contain_text("网页")  # not "webchat"
    await page.get_by_label("姓名", exact=True).fill("李女士")
    await page.get_by_label("标签", exact=True).fill("vip, 大客户")
    await page.get_by_label("备注", exact=True).fill("需要开专票")
    await box.get_by_role("button", name="保存").click()
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
    await view.get_by_role("button", name="调查中").click()
    await expect(view.locator("#case-title")).to_contain_text("调查中")
    await view.get_by_role("button", name="已解决").click()
    await answer(page, "已补发，顺丰单号 SF123", "已解决")
    await expect(view.locator("#case-title")).to_contain_text("已解决，待回访")
    await expect(view.locator("#case-info")).to_contain_text("回访 ")
    await view.get_by_role("button", name="回访：不满意").click()
    await answer(page, "客户说还没收到", "回访：不满意")
    await expect(view.locator("#case-title")).to_contain_text("待处理")
    timeline = view.locator("#case-timeline li")
    await expect(timeline).to_have_count(4)
    await expect(timeline.nth(2)).to_contain_text("已解决: 已补发，顺丰单号 SF123")
    await expect(timeline.nth(3)).to_contain_text("回访：不满意，重新处理: 客户说还没收到")
    await expect(page.locator("#customer-side")).not_to_contain_text("Name")  # one language
    assert dialogs == []  # no browser alert, confirm or prompt
    record = await kefu.store.customers()
    assert [(c.name, c.tags) for c in record] == [("李女士", ("vip", "大客户"))]
