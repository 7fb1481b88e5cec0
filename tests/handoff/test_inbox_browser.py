"""The agent console's inbox and conversation in chromium: tabs, search, notifications,
notes, labels, the picker, IME composition, the 1-minute banner and the shop's timezone."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser import log_in, skip_without_chromium
from tests.harness import Kefu

pytestmark = pytest.mark.browser
skip_without_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402

# Records each desktop notification the page shows, then shows it as the browser would.
RECORD_NOTIFICATIONS = """
window.shownNotifications = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { super(title, options); window.shownNotifications.push(title); }
};
window.audioContexts = [];
const RealAudio = window.AudioContext;
window.AudioContext = class extends RealAudio {
  constructor(...args) { super(...args); window.audioContexts.push(this); }
};
"""


async def console(browser: Browser, kefu: Kefu, name: str = "duty", role: str = "agent",
                  **context: Any) -> Page:
    """An agent's console in a UTC browser (the shop is in Asia/Shanghai), with desktop
    notifications allowed."""
    context.setdefault("viewport", {"width": 1280, "height": 800})
    opened = await browser.new_context(timezone_id="UTC", permissions=["notifications"],
                                       **context)
    await opened.add_init_script(RECORD_NOTIFICATIONS)
    page = await opened.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    await log_in(page, kefu, name, role)
    return page


async def notifications(page: Page, at_least: int = 0) -> list[str]:
    """The notifications shown so far, once there are `at_least` of them."""
    deadline = time.monotonic() + 10
    while True:
        shown: list[str] = await page.evaluate("() => window.shownNotifications")
        if len(shown) >= at_least or time.monotonic() > deadline:
            return shown
        await page.wait_for_timeout(100)


async def take_in_console(page: Page, title: str) -> None:
    await page.get_by_role("tab", name="待接入").click()
    await page.locator("#inbox li", has_text=title).click()
    await page.get_by_role("button", name="接入").click()
    await expect(page.locator("#reply-form")).to_be_visible()
    await expect(page.locator("#mode-reply")).to_be_visible()


async def test_tabs_count_search_finds_message_text_and_the_chat_moves_to_mine(
        kefu: Kefu, browser: Browser) -> None:
    await kefu.queued_customer("转人工，快递三天没动")
    await kefu.queued_customer("转人工，发票抬头开错了，电话 13812345678")
    page = await console(browser, kefu)
    unassigned = page.get_by_role("tab", name="待接入")
    await expect(unassigned.locator(".count")).to_have_text("2")
    await expect(page.get_by_role("tab", name="全部")).to_be_hidden()  # supervisors only
    await unassigned.click()
    cards = page.locator("#inbox li")
    await expect(cards).to_have_count(2)
    # titled by the contact the customer gave, else as a visitor; with the waiting time
    await expect(cards.filter(has_text="13812345678")).to_have_count(1)
    await expect(cards.filter(has_text="访客")).to_have_count(1)
    await expect(cards.first.locator(".wait")).to_contain_text("等待")

    await page.get_by_label("search").fill("发票")
    await expect(cards).to_have_count(1)
    await expect(cards.first).to_contain_text("13812345678")
    await expect(unassigned.locator(".count")).to_have_text("1")
    await page.get_by_label("search").fill("")
    await expect(cards).to_have_count(2)

    await take_in_console(page, "13812345678")
    await expect(unassigned.locator(".count")).to_have_text("1")
    mine = page.get_by_role("tab", name="我的")
    await expect(mine.locator(".count")).to_have_text("1")
    await expect(mine).to_have_attribute("aria-selected", "true")
    await expect(cards).to_have_count(1)
    await expect(cards.first).to_contain_text("13812345678")


async def test_a_new_chat_and_a_customer_message_notify_unless_muted(
        kefu: Kefu, browser: Browser) -> None:
    page = await console(browser, kefu)
    await expect(page.locator("#live")).to_contain_text("已连接")
    visitor, cid = await kefu.queued_customer("转人工")
    assert await notifications(page, 1) == ["新会话"]
    await expect(page).to_have_title("(1) kefu · 客服工作台")

    agent = await kefu.store.agent_by_name("duty")
    assert agent is not None
    await kefu.desk.take(agent, cid)  # given to the agent while they look elsewhere
    await visitor.say("还在吗？")
    assert await notifications(page, 2) == ["新会话", f"访客 {visitor.id[-6:]} 发来消息"]
    await expect(page).to_have_title("(2) kefu · 客服工作台")  # unread in my chats

    await page.get_by_role("button", name="设置").click()
    dialog = page.locator("dialog")
    await dialog.get_by_label("我的会话里客户的新消息").uncheck()
    await dialog.get_by_role("button", name="保存").click()
    await expect(dialog.get_by_role("status").first).to_have_text("已保存")
    await dialog.get_by_role("button", name="完成").click()
    await visitor.say("人呢")
    await expect(page).to_have_title("(3) kefu · 客服工作台")
    assert len(await notifications(page)) == 2
    settings = await kefu.store.agent_settings(agent.id)
    assert settings.muted == ("customer_message",)


async def test_times_are_the_shops_and_the_banner_shows_past_one_minute(
        kefu: Kefu, browser: Browser) -> None:
    _, cid = await kefu.queued_customer("转人工")
    page = await console(browser, kefu)
    await take_in_console(page, "访客")
    await expect(page.locator("#chat-flag")).to_be_hidden()
    said = (await kefu.store.messages(cid))[0]
    shop_time = datetime.fromtimestamp(said.ts, ZoneInfo("Asia/Shanghai")).strftime("%H:%M")
    await expect(page.locator("#transcript .msg.customer .who").first).to_have_text(shop_time)
    assert await page.evaluate("new Date().getTimezoneOffset()") == 0  # the browser is UTC
    # events are short lines in the agent's language, not raw records
    await expect(page.locator("#transcript .event").first).to_contain_text(
        "进入排队 · 客户要求人工")
    await expect(page.locator("#transcript")).not_to_contain_text("reason=")

    conversation = await kefu.store.get_conversation(cid)
    assert conversation is not None
    await kefu.store.save_conversation(replace(conversation,
                                               awaiting_agent_since=time.time() - 75))
    await page.locator("#inbox li").first.click()
    await page.get_by_role("tab", name="我的").click()
    await page.locator("#inbox li").first.click()
    banner = page.locator("#chat-flag")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("客户已等待 1分")
    assert "超时未回复" in await notifications(page, 1)
    await page.locator("#reply").fill("您好，马上为您查询订单")
    await page.locator("#reply").press("Enter")
    await expect(banner).to_be_hidden()


async def test_notes_labels_and_the_presence_line(kefu: Kefu, browser: Browser) -> None:
    visitor, cid = await kefu.queued_customer("转人工")
    page = await console(browser, kefu)
    await take_in_console(page, "访客")
    await expect(page.locator("#chat-presence")).to_have_text("在线")

    await page.get_by_role("button", name="内部备注").click()
    await page.locator("#reply").fill("老顾客，上次已补偿")
    await page.locator("#reply").press("Enter")
    note = page.locator("#transcript .note")
    await expect(note).to_contain_text("老顾客，上次已补偿")
    await expect(note).to_contain_text("备注 · duty")
    assert not any("老顾客" in str(frame) for frame in visitor.frames)

    await page.get_by_label("新标签").fill("加急")
    await page.get_by_label("新标签").press("Enter")
    await expect(page.locator("#chat-labels .chip")).to_have_text(["加急×"])
    await expect(page.locator("#inbox li .chip")).to_have_text("加急")
    assert await kefu.store.labels([cid]) == {cid: ("加急",)}
    await page.get_by_label("remove 加急").click()
    await expect(page.locator("#chat-labels .chip")).to_have_count(0)

    await visitor.disconnect()
    await page.reload()
    await page.get_by_role("tab", name="我的").click()
    await page.locator("#inbox li").first.click()
    await expect(page.locator("#chat-presence")).to_contain_text("已离开")
    await expect(page.locator("#delivery-window")).to_be_hidden()  # web chat has no window


async def test_the_picker_keys_and_enter_during_ime_composition(kefu: Kefu, browser: Browser
                                                                ) -> None:
    _, cid = await kefu.queued_customer("转人工")
    page = await console(browser, kefu)
    await take_in_console(page, "访客")
    reply = page.locator("#reply")
    picker = page.locator("#picker li")

    await reply.fill("/or")  # two canned replies: order and order-en
    await expect(picker).to_have_count(2)
    await reply.press("Enter")  # picks the first
    await expect(reply).to_have_value("麻烦您提供一下订单号，我马上为您查询。")
    await reply.fill("/or")
    await reply.press("ArrowDown")
    await expect(picker.nth(1)).to_have_class("chosen")
    await reply.press("Tab")
    await expect(reply).to_have_value(
        "Could you give me your order number? I'll look it up right away.")
    await reply.fill("/name")  # variables are filled in: no name known, so none
    await reply.press("Enter")
    await expect(reply).to_have_value("您好，我是测试店的客服duty，很高兴为您服务。")
    await reply.fill("/hel")  # found by its text too: nothing starts with "hel"
    await expect(picker.first).to_contain_text("Hello")
    await reply.press("Escape")
    await expect(picker).to_have_count(0)

    # Pinyin: the Enter that picks a candidate arrives while composing; it must not send.
    await reply.fill("ni hao")
    await reply.evaluate("""box => box.dispatchEvent(new KeyboardEvent("keydown",
        {key: "Enter", keyCode: 229, isComposing: true, bubbles: true, cancelable: true}))""")
    await page.wait_for_timeout(300)
    await expect(reply).to_have_value("ni hao")
    await reply.fill("你好")
    await reply.press("Enter")
    await expect(page.locator("#transcript .msg.agent")).to_have_count(1)
    await expect(reply).to_have_value("")
    said = [m.text for m in await kefu.store.messages(cid) if m.role.value == "agent"]
    assert said == ["你好"]


async def test_a_supervisor_sees_all_and_disables_an_account(kefu: Kefu, browser: Browser
                                                             ) -> None:
    from bot.store import AgentRole

    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    await kefu.queued_customer("转人工")
    page = await console(browser, kefu, "boss", "supervisor")
    every = page.get_by_role("tab", name="全部")
    await expect(every.locator(".count")).to_have_text("1")
    await page.get_by_role("button", name="账号").click()
    dialog = page.locator("dialog")
    await dialog.get_by_label("账号").fill("mei")
    await dialog.get_by_label("新密码").fill("mei's password")
    await dialog.get_by_role("button", name="添加客服").click()
    row = dialog.locator("tr", has_text="mei")
    await expect(row).to_contain_text("离线")
    await row.get_by_role("button", name="停用").click()
    await expect(row).to_contain_text("已停用")
    mei = await kefu.store.agent_by_name("mei")
    assert mei is not None and mei.disabled


async def test_the_console_speaks_english_when_the_agent_chooses_it(kefu: Kefu,
                                                                     browser: Browser) -> None:
    await kefu.queued_customer("转人工")
    page = await console(browser, kefu)
    await page.get_by_role("button", name="设置").click()
    await page.locator("dialog").get_by_label("语言").select_option("en")
    await page.locator("dialog").get_by_role("button", name="保存").click()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("tab", name="Unassigned")).to_be_visible()
    await page.reload()
    await page.get_by_role("tab", name="Unassigned").click()
    await page.locator("#inbox li").click()
    await expect(page.locator("#transcript .event").first).to_contain_text(
        "Queued · asked for a person")
    record = page.locator("#customer-side")
    await expect(record.get_by_label("Name", exact=True)).to_be_visible()
    await expect(record.get_by_role("button", name="Save")).to_be_visible()
    await expect(record.locator("#customer-facts")).to_contain_text("Web chat")
    await expect(record.locator("#customer-contacts")).to_have_text("No phone or email yet")
    await expect(record).not_to_contain_text("姓名")
    await expect(page.locator("#me")).to_have_text("duty · agent")


async def test_the_four_filters_narrow_the_list(kefu: Kefu, browser: Browser) -> None:
    from bot.store import AgentRole

    await kefu.add_agent("boss", role=AgentRole.SUPERVISOR, online=True)
    _, web = await kefu.queued_customer("转人工，发票抬头开错了，电话 13812345678")
    _, wechat = await kefu.queued_customer("转人工，快递三天没动，电话 13900001111")
    _, held = await kefu.queued_customer("转人工，想改地址，电话 13700002222")
    for cid, change in ((wechat, {"channel": "wechat", "queued_at": time.time() - 400}),
                        (web, {"queued_at": time.time() - 90})):
        conversation = await kefu.store.get_conversation(cid)
        assert conversation is not None
        await kefu.store.save_conversation(replace(conversation, **change))
    duty = await kefu.store.agent_by_name("duty")
    assert duty is not None
    await kefu.desk.take(duty, held)
    await kefu.store.set_labels(held, ["改地址"])
    page = await console(browser, kefu, "boss", "supervisor")
    await page.get_by_role("tab", name="全部").click()
    cards = page.locator("#inbox li")
    await expect(cards).to_have_count(3)

    async def only(select: str, option: str, shown: list[str]) -> None:
        await page.get_by_label(select, exact=True).select_option(label=option)
        await expect(cards).to_have_count(len(shown))
        for cid in shown:
            await expect(page.locator(f'#inbox li[data-id="{cid}"]')).to_be_visible()
        await page.get_by_label(select, exact=True).select_option(index=0)
        await expect(cards).to_have_count(3)

    await only("channel", "微信公众号", [wechat])
    await only("channel", "网页", [web, held])
    await only("state", "接待中", [held])
    await only("state", "排队中", [web, wechat])
    await only("label", "改地址", [held])
    await only("waiting", "等待超过 1 分钟", [web, wechat])
    await only("waiting", "等待超过 5 分钟", [wechat])
    # filters add up
    await page.get_by_label("channel", exact=True).select_option(label="网页")
    await page.get_by_label("state", exact=True).select_option(label="排队中")
    await expect(cards).to_have_count(1)
    await expect(cards.first).to_contain_text("13812345678")


async def test_typing_shows_on_both_sides(kefu: Kefu, browser: Browser) -> None:
    from tests.browser import url

    widget = await browser.new_page()
    await widget.goto(url(kefu))
    await widget.get_by_role("button", name="客服").click()
    box = widget.get_by_role("textbox")
    await box.fill("转人工")
    await box.press("Enter")
    await expect(widget.locator(".kefu-kind-handoff")).to_have_count(1)
    page = await console(browser, kefu)
    await take_in_console(page, "访客")
    typing = page.locator("#typing")
    await expect(typing).to_be_hidden()

    # the customer types, and has not sent (the widget tells at most every 3 s)
    await box.press_sequentially("请问我的订单到哪了", delay=500)
    await expect(typing).to_be_visible()
    await expect(typing).to_have_text("客户正在输入…")
    await expect(typing).to_be_hidden(timeout=8000)  # they stopped

    status = widget.locator(".kefu-status")
    await expect(status).not_to_have_text("客服正在输入…")
    await page.locator("#reply").press_sequentially("您好", delay=50)
    await expect(status).to_have_text("客服正在输入…")
    await expect(status).to_be_visible()


async def test_on_a_tablet_the_customer_record_opens_as_a_drawer(kefu: Kefu, browser: Browser
                                                                 ) -> None:
    await kefu.queued_customer("转人工，电话 13812345678")
    page = await console(browser, kefu, viewport={"width": 1024, "height": 768})
    await take_in_console(page, "13812345678")
    record = page.locator("#customer-side")
    await expect(record).to_be_hidden()  # the chat gets the width
    await page.get_by_role("button", name="客户资料").click()
    await expect(record).to_be_visible()
    await expect(record.locator("#customer-contacts")).to_contain_text("13812345678")
    drawer, chat = await record.bounding_box(), await page.locator("#transcript").bounding_box()
    assert drawer is not None and chat is not None
    assert drawer["x"] + drawer["width"] <= 1024 and drawer["width"] >= 280
    await record.get_by_label("姓名", exact=True).fill("李女士")
    await record.get_by_role("button", name="保存").click()
    await expect(page.locator("#customer-name")).to_have_text("李女士")
    await record.get_by_role("button", name="收起").click()
    await expect(record).to_be_hidden()
    await expect(page.locator("#reply")).to_be_visible()


async def test_event_lines_name_platform_servicers_and_removed_agents(kefu: Kefu,
                                                                      browser: Browser) -> None:
    from bot.store import ConversationEvent

    _, cid = await kefu.queued_customer("转人工")
    now = time.time()
    for event in (ConversationEvent(cid, now, "assigned", "wecom:zhangsan"),
                  ConversationEvent(cid, now + 1, "transferred", "wecom:zhangsan",
                                    {"from_agent": "wecom:zhangsan", "to": "wecom:pool"}),
                  ConversationEvent(cid, now + 2, "assigned", "0123456789abcdef"),
                  ConversationEvent(cid, now + 3, "delivered_late", None,
                                    {"seq": 3, "age_seconds": 125})):
        await kefu.store.record_event(event, ())
    page = await console(browser, kefu)
    await page.get_by_role("tab", name="待接入").click()
    await page.locator("#inbox li").first.click()
    events = page.locator("#transcript .event")
    await expect(events.filter(has_text="企业微信接待人员 zhangsan 接入了会话")).to_have_count(1)
    await expect(events.filter(
        has_text="企业微信接待人员 zhangsan 转接给 企业微信接待池")).to_have_count(1)
    await expect(events.filter(has_text="已删除的客服 接入了会话")).to_have_count(1)
    await expect(events.filter(
        has_text="保留的回复已在客户再次来信时送达（晚了 2分5秒）")).to_have_count(1)
    await expect(page.locator("#transcript")).not_to_contain_text("delivered_late")
    await expect(events.filter(has_text=re.compile(r"^ 接入了会话"))).to_have_count(0)


async def test_the_first_click_wakes_the_sound_and_a_late_read_chat_counts_in_the_title(
        kefu: Kefu, browser: Browser) -> None:
    visitor, cid = await kefu.queued_customer("转人工")
    page = await console(browser, kefu)
    await expect(page.locator("#live")).to_contain_text("已连接")
    await take_in_console(page, "访客")  # the first clicks: the sound is ready before any alert
    states = await page.evaluate("() => window.audioContexts.map((a) => a.state)")
    assert states == ["running"]
    await visitor.say("在吗")
    await expect(page.locator("#transcript .msg.customer").last).to_have_text(
        re.compile("在吗"))
    await expect(page).to_have_title("kefu · 客服工作台")  # read: nothing waits
    conversation = await kefu.store.get_conversation(cid)
    assert conversation is not None
    await kefu.store.save_conversation(replace(conversation,
                                               awaiting_agent_since=time.time() - 75))
    await page.reload()
    await expect(page).to_have_title("(1) kefu · 客服工作台")  # read, but past 1 minute
