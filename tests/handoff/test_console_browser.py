"""The agent console in a real browser, next to a customer in the widget."""

from __future__ import annotations

import pytest

from tests.browser import skip_without_chromium, url
from tests.harness import Kefu

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402

XSS = '<img src=x onerror="alert(1)">'


async def customer_asks_for_a_person(browser: Browser, kefu: Kefu) -> Page:
    page = await browser.new_page()
    await page.goto(url(kefu))
    await page.get_by_role("button", name="客服").click()
    box = page.get_by_role("textbox")
    await box.fill("转人工")
    await box.press("Enter")
    await expect(page.locator(".kefu-kind-handoff")).to_have_count(1)
    await box.fill(XSS)
    await box.press("Enter")
    await expect(page.locator(".kefu-kind-holding")).to_have_count(1)
    return page


async def agent_logs_in(browser: Browser, kefu: Kefu, dialogs: list[str]) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(url(kefu, "/agent"))
    await expect(page).to_have_url(url(kefu, "/agent/login"))
    await page.get_by_label("账号 Name").fill("duty")
    await page.get_by_label("密码 Password").fill("correct horse")
    await page.get_by_role("button", name="登录 Log in").click()
    await expect(page).to_have_url(url(kefu, "/agent"))
    await expect(page.locator("#me")).to_have_text("duty · 客服")
    return page


async def test_agent_takes_the_chat_and_the_reply_reaches_the_widget(
    kefu: Kefu, browser: Browser
) -> None:
    customer = await customer_asks_for_a_person(browser, kefu)
    dialogs: list[str] = []
    agent = await agent_logs_in(browser, kefu, dialogs)

    await agent.get_by_role("tab", name="待接入").click()
    waiting = agent.locator("#inbox li")
    await expect(waiting).to_have_count(1)
    await waiting.click()
    transcript = agent.locator("#transcript")
    # The customer's HTML is shown as text: no element made, no script run.
    await expect(transcript.locator(".msg.customer .text").last).to_have_text(XSS)
    assert await transcript.locator("img").count() == 0
    await expect(transcript.locator(".msg.bot").first).to_contain_text("欢迎光临测试店")
    await expect(agent.locator("#chat-info")).to_contain_text("转人工原因：客户要求人工")

    await agent.get_by_role("button", name="接入").click()
    # the chat moves from the queue to the agent's own tab, which opens
    await expect(agent.get_by_role("tab", name="待接入")).to_contain_text("0")
    await expect(agent.get_by_role("tab", name="我的")).to_have_attribute("aria-selected", "true")
    await expect(agent.locator("#inbox li")).to_have_count(1)
    await expect(customer.locator(".kefu-kind-notice")).to_contain_text("duty")

    reply = agent.locator("#reply")
    await reply.fill("/check")  # a canned reply by its shortcut
    await reply.press("Enter")
    await expect(reply).to_have_value("正在为您查询，请稍候，大约需要 1-2 分钟。")
    await reply.fill("您好，我是客服 duty，马上为您处理。")
    await reply.press("Enter")
    answer = customer.locator(".kefu-agent")
    await expect(answer).to_have_count(1)
    await expect(answer).to_contain_text("您好，我是客服 duty，马上为您处理。")
    await expect(answer.locator(".kefu-name")).to_have_text("客服 duty")

    # A curt reply is held back with a warning until the agent confirms it.
    await reply.fill("嗯")
    await reply.press("Enter")
    await expect(agent.locator("#warning")).to_contain_text("含糊或生硬")
    await expect(customer.locator(".kefu-agent")).to_have_count(1)

    # The customer writes back: it appears in the console live.
    box = customer.get_by_role("textbox")
    await box.fill("好的谢谢")
    await box.press("Enter")
    await expect(transcript.locator(".msg.customer .text").last).to_have_text("好的谢谢")
    assert dialogs == []


async def test_closing_asks_the_customer_for_a_rating_they_can_tap(
    kefu: Kefu, browser: Browser
) -> None:
    customer = await customer_asks_for_a_person(browser, kefu)
    dialogs: list[str] = []
    agent = await agent_logs_in(browser, kefu, dialogs)
    await agent.get_by_role("tab", name="待接入").click()
    await agent.locator("#inbox li").click()
    await agent.get_by_role("button", name="接入").click()
    await agent.get_by_role("tab", name="我的").click()
    await expect(agent.locator("#inbox li")).to_have_count(1)
    await agent.get_by_role("button", name="结束", exact=True).click()
    ask = agent.locator("dialog#ask")
    await expect(ask).to_contain_text("结束会话并邀请客户评分？")
    await ask.get_by_role("button", name="结束", exact=True).click()
    await expect(customer.locator(".kefu-kind-rating_request")).to_have_count(1)
    await customer.locator(".kefu-quick button", has_text="5 非常满意").click()
    await expect(customer.locator(".kefu-kind-rating_thanks")).to_have_count(1)
    conversation = (await kefu.store.conversations_of("webchat", (
        await customer.evaluate("localStorage.getItem('kefu.visitor')"))))[0]
    assert conversation.rating == 5
