"""Agents' own accounts in chromium: changing my password, a supervisor resetting,
disabling and enabling a colleague, and a disabled colleague's chats going back to the queue."""

from __future__ import annotations

import pytest

from bot.store import AgentRole
from tests.browser import log_in, skip_without_chromium, url
from tests.harness import Kefu

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402


async def console(browser: Browser, kefu: Kefu, name: str, role: str = "agent",
                  password: str = "correct horse", dialogs: list[str] | None = None) -> Page:
    """A console in its own browser context (its own cookies); the browser's own dialogs are
    recorded, as the console should show none."""
    page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    if dialogs is not None:
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await log_in(page, kefu, name, role, password)
    return page


async def cannot_log_in(browser: Browser, kefu: Kefu, name: str, password: str) -> None:
    page = await browser.new_page()
    await page.goto(url(kefu, "/agent/login"))
    await page.get_by_label("账号 Name").fill(name)
    await page.get_by_label("密码 Password").fill(password)
    await page.get_by_role("button", name="登录 Log in").click()
    await expect(page.get_by_role("alert")).not_to_be_empty()
    await expect(page).to_have_url(url(kefu, "/agent/login"))
    await page.close()


async def test_an_agent_changes_their_own_password_and_logs_in_with_it(
        kefu: Kefu, browser: Browser) -> None:
    page = await console(browser, kefu, "duty")
    await page.get_by_role("button", name="设置").click()
    dialog = page.locator("dialog#dialog")
    await dialog.get_by_label("当前密码").fill("wrong guess")
    await dialog.get_by_label("新密码").fill("a longer secret 2026")
    await dialog.get_by_role("button", name="修改密码").click()
    await expect(dialog.get_by_role("status").last).to_have_text(
        "the current password is not right")
    await dialog.get_by_label("当前密码").fill("correct horse")
    await dialog.get_by_role("button", name="修改密码").click()
    await expect(dialog.get_by_role("status").last).to_have_text("已保存")
    await expect(dialog.get_by_label("新密码")).to_have_value("")
    await dialog.get_by_role("button", name="完成").click()

    await page.get_by_role("button", name="退出").click()
    await expect(page).to_have_url(url(kefu, "/agent/login"))
    await cannot_log_in(browser, kefu, "duty", "correct horse")
    await log_in(page, kefu, "duty", password="a longer secret 2026")
    await expect(page.locator("#live")).to_contain_text("已连接")


async def test_a_supervisor_resets_a_password_in_a_dialog_and_re_enables_the_account(
        kefu: Kefu, browser: Browser) -> None:
    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    await kefu.add_agent("mei")
    dialogs: list[str] = []
    page = await console(browser, kefu, "boss", "supervisor", dialogs=dialogs)
    await page.get_by_role("button", name="账号").click()
    accounts = page.locator("dialog#dialog")
    row = accounts.locator("tr", has_text="mei")
    await row.get_by_role("button", name="重置密码").click()
    ask = page.locator("dialog#ask")
    await expect(ask).to_contain_text("重置 mei 的密码")
    password = ask.get_by_label("新密码")
    assert await password.get_attribute("type") == "password"  # not shown as typed
    await password.fill("short")
    await ask.get_by_role("button", name="重置密码").click()
    await expect(accounts.get_by_role("status").first).to_contain_text("at least")
    await row.get_by_role("button", name="重置密码").click()
    await ask.get_by_label("新密码").fill("mei's new password")
    await ask.get_by_role("button", name="重置密码").click()
    await expect(ask).to_be_hidden()
    await expect(accounts.get_by_role("status").first).to_have_text("已保存")
    await cannot_log_in(browser, kefu, "mei", "correct horse")

    await row.get_by_role("button", name="停用").click()
    await expect(row).to_contain_text("已停用")
    await cannot_log_in(browser, kefu, "mei", "mei's new password")
    await row.get_by_role("button", name="启用").click()
    await expect(row).not_to_contain_text("已停用")
    await expect(row.get_by_role("button", name="停用")).to_be_visible()
    mei = await console(browser, kefu, "mei", password="mei's new password")
    await expect(mei.locator("#live")).to_contain_text("已连接")
    assert dialogs == []  # no browser prompt showed the password


async def test_a_disabled_agents_chat_goes_back_to_the_queue(kefu: Kefu, browser: Browser
                                                             ) -> None:
    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    visitor, cid = await kefu.queued_customer("转人工，电话 13812345678")
    duty = await kefu.store.agent_by_name("duty")
    assert duty is not None
    await kefu.desk.take(duty, cid)
    page = await console(browser, kefu, "boss", "supervisor")
    unassigned = page.get_by_role("tab", name="待接入")
    await expect(unassigned.locator(".count")).to_have_text("0")

    await page.get_by_role("button", name="账号").click()
    accounts = page.locator("dialog#dialog")
    await accounts.locator("tr", has_text="duty").get_by_role("button", name="停用").click()
    await expect(accounts.locator("tr", has_text="duty")).to_contain_text("已停用")
    await accounts.get_by_role("button", name="完成").click()

    await expect(unassigned.locator(".count")).to_have_text("1")
    await unassigned.click()
    await page.locator("#inbox li", has_text="13812345678").click()
    await expect(page.locator("#chat-info")).to_contain_text("排队中")
    await expect(page.locator("#transcript .event", has_text="duty 已停用，会话回到排队")
                 ).to_have_count(1)
    await expect(page.get_by_role("button", name="接入")).to_be_visible()
    await page.get_by_role("button", name="接入").click()
    await expect(page.get_by_role("tab", name="我的").locator(".count")).to_have_text("1")
    assert any("转接其他客服" in f.get("text", "") for f in visitor.frames
               if f["type"] == "message") or await _told(visitor)


async def _told(visitor: object) -> bool:
    """Read the customer's frames until the notice that they are being passed on."""
    from tests.harness import Visitor

    assert isinstance(visitor, Visitor)
    while True:
        frame = await visitor.receive()
        if frame["type"] == "message" and "转接其他客服" in frame.get("text", ""):
            return True
