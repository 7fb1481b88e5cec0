"""A WeCom servicer's chat in kefu's console, in a real browser."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.store import AgentRole
from tests.browser import log_in, skip_without_chromium
from tests.channels.wecom.world import servicers_world

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, expect  # noqa: E402


async def test_a_supervisor_follows_a_servicers_chat_and_hands_it_back(
        wecom_world: Any, browser: Browser) -> None:
    wecom = await servicers_world(wecom_world)
    await wecom.kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    await wecom.writes("wmHan", "转人工")
    wecom.standin.servicer_takes("zhangsan", "wmHan")
    wecom.standin.servicer_writes("zhangsan", "wmHan", "您好，我是张三，帮您查一下订单。")
    await wecom.nudged()

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await log_in(page, wecom.kefu, "boss", "supervisor")
    await page.get_by_role("tab", name="全部").click()  # held by a servicer, not by boss
    chat = page.locator("#inbox li")
    await expect(chat).to_have_count(1)
    await expect(chat).to_contain_text("zhangsan (wecom)")
    await chat.click()
    info = page.locator("#chat-info")
    await expect(info).to_contain_text("zhangsan (wecom)")
    await expect(info).to_contain_text("在平台应用中接待，此处不能回复")
    said = page.locator("#transcript .msg.agent").last
    await expect(said).to_contain_text("您好，我是张三，帮您查一下订单。")
    await expect(said).to_contain_text("zhangsan")
    # kefu cannot write into WeCom's session: no reply (private notes only), only handing
    # back or closing
    await expect(page.locator("#mode-reply")).to_be_hidden()
    await expect(page.locator("#hold")).to_be_hidden()

    await page.get_by_role("button", name="转回机器人").click()
    await expect(info).to_contain_text("机器人")
    await wecom.settle()
    assert wecom.standin.states["wmHan"] == 4  # ended in WeCom: the bot has the customer
    assert "智能客服" in wecom.standin.sent[-1].content


async def test_the_delivery_window_shows_what_is_left_and_warns_before_the_last(
        wecom_world: Any, browser: Browser) -> None:
    """WeCom allows 5 messages in the 48 hours after a customer's message: the agent sees
    how many are left and is warned before the last one."""
    wecom = await wecom_world()
    await wecom.writes("wmWin", "转人工")
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await log_in(page, wecom.kefu, "duty")
    await page.get_by_role("tab", name="待接入").click()
    await page.locator("#inbox li").click()
    await page.get_by_role("button", name="接入").click()
    await expect(page.locator("#reply-form")).to_be_visible()
    await wecom.settle()  # "客服duty已接入" has used one of the five
    await page.locator("#inbox li").first.click()
    shown = page.locator("#delivery-window")
    left = re.compile(r"还可发送 (\d) 条 · 窗口剩余 47小时5\d分")
    await expect(shown).to_contain_text(left)
    found = left.search(await shown.inner_text())
    assert found is not None
    reply = page.locator("#reply")
    for i in range(int(found.group(1)) - 1):  # the agent uses all but the last
        await reply.fill(f"您好，这是第 {i + 1} 条回复，请您查收。")
        await reply.press("Enter")
        await expect(reply).to_have_value("")
    await wecom.settle()
    await page.locator("#inbox li").first.click()  # the chat read again
    await expect(shown).to_contain_text("只剩最后 1 条可发送")
    await expect(shown).to_have_class("window last")
    await reply.fill("最后一条：您的问题已经处理好了。")
    await reply.press("Enter")
    await expect(reply).to_have_value("")
    await wecom.settle()
    await page.locator("#inbox li").first.click()
    await expect(shown).to_contain_text("本窗口的消息已用完")  # not "0 left"
    await expect(shown).to_have_class("window closed")
    await page.close()
