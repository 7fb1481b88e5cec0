"""Issue 21 in the console, in chromium: a supervisor erases a customer on request (after a
dialog naming them; refused while they are in a conversation) and reads the access trail;
agents see neither."""

from __future__ import annotations

import pytest

from bot.store import AgentRole
from tests.browser import log_in, skip_without_chromium, url
from tests.harness import Kefu

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402

PHONE = "13812345678"


async def opened_chat(browser: Browser, kefu: Kefu, name: str, role: str) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await log_in(page, kefu, name, role)
    await page.get_by_role("tab", name="待接入").click()
    await page.locator("#inbox li", has_text=PHONE).click()
    await expect(page.locator("#customer-contacts")).to_contain_text(PHONE)
    return page


async def test_a_supervisor_erases_a_customer_and_reads_the_trail(kefu: Kefu, browser: Browser
                                                                  ) -> None:
    boss = await kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    _, cid = await kefu.queued_customer(f"转人工，退款，电话 {PHONE}")
    page = await opened_chat(browser, kefu, "boss", "supervisor")
    erase = page.get_by_role("button", name="删除此客户的个人数据")
    ask = page.locator("dialog#ask")

    await erase.click()  # changed their mind: nothing happens
    await expect(ask).to_contain_text(f"永久删除 {PHONE}")
    await ask.get_by_role("button", name="取消").click()
    await expect(ask).to_be_hidden()
    assert await kefu.store.customers_with_contact(PHONE)

    await erase.click()  # still in the queue: the API refuses, and the console says why
    await ask.get_by_role("button", name="永久删除").click()
    await expect(ask).to_contain_text("未能删除：该客户还有未结束的会话")
    await ask.get_by_role("button", name="确定").click()
    assert await kefu.store.customers_with_contact(PHONE)

    await kefu.desk.close(boss, cid)
    await expect(page.locator("#chat-info")).to_contain_text("已结束")
    await erase.click()
    await ask.get_by_role("button", name="永久删除").click()
    await expect(ask).to_contain_text(f"已删除 {PHONE}")
    await expect(ask).to_contain_text("1 条客户记录已删除")
    await ask.get_by_role("button", name="确定").click()
    assert await kefu.store.customers_with_contact(PHONE) == []

    await page.get_by_role("button", name="访问记录").click()
    trail = page.locator("#trail-table tbody tr")
    await expect(trail.filter(has_text="删除客户数据")).to_have_count(1)
    await expect(trail.filter(has_text="查看客户资料").first).to_contain_text("boss")
    await expect(trail.first).to_contain_text("127.0.0.1")
    await page.locator("#trail-action").select_option(label="删除客户数据")
    await page.get_by_role("button", name="查看", exact=True).click()
    await expect(trail).to_have_count(1)
    await expect(trail.first).to_contain_text("customer records deleted=1")
    await page.locator("#trail-actor").fill("nobody")
    await page.get_by_role("button", name="查看", exact=True).click()
    await expect(trail).to_have_count(0)
    await expect(page.locator("#trail-status")).to_have_text("这段时间没有记录")
    assert not await trail.locator("input, button, [contenteditable]").count()  # read-only


async def test_agents_see_neither_erase_nor_the_trail(kefu: Kefu, browser: Browser) -> None:
    await kefu.queued_customer(f"转人工，电话 {PHONE}")
    page = await opened_chat(browser, kefu, "duty", "agent")
    await expect(page.get_by_role("button", name="删除此客户的个人数据")).to_be_hidden()
    await expect(page.get_by_role("button", name="访问记录")).to_be_hidden()
    response = await page.request.get(url(kefu, "/agent/api/audit"))
    assert response.status == 403
