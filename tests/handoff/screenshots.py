"""The console's pictures in docs/images/: the inbox, a chat and the report at 1280x800
(console-inbox.png, console-chat.png, console-report.png).

    .venv/bin/python -m tests.handoff.screenshots [folder]

A kefu with the test knowledge base, a few customers waiting and one chat in progress,
seen by a supervisor in chromium (Chinese text needs fonts-wqy-microhei or another CJK font).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from playwright.async_api import Page, ViewportSize, async_playwright

from bot.config import Config
from bot.messages import ConversationState
from bot.store import AgentRole
from tests.browser import CHROMIUM, LAUNCH_ARGS, url
from tests.conftest import ALWAYS_OPEN, TEST_KB
from tests.handoff.report_seed import WEEK, generate, seed
from tests.harness import Kefu, write_kb

SIZE: ViewportSize = {"width": 1280, "height": 800}


def config(folder: Path) -> Config:
    kb = write_kb(folder / "kb", TEST_KB)
    return Config.model_validate({
        "business": {"name": "测试店", "hours": ALWAYS_OPEN},
        "knowledge_base": {"path": str(kb), "regressions": str(folder / "regressions.yaml"),
                           "vocabulary": str(folder / "vocabulary.yaml")},
        "store": {"path": str(folder / "kefu.sqlite3")},
        "matching": {"vector_cache": str(folder / "vectors")},
        "desk": {"auto_assign": False}})


async def close_seeded_queue(kefu: Kefu) -> None:
    """The report's week leaves a few customers queued; weeks later nobody is still waiting,
    so the inbox shows only today's customers."""
    for conversation in await kefu.store.conversations_in_state(ConversationState.QUEUED):
        await kefu.store.save_conversation(replace(
            conversation, state=ConversationState.CLOSED, closed_at=conversation.queued_at,
            close_reason="abandoned"))


async def scene(kefu: Kefu) -> str:
    """Customers waiting and one chat held by the supervisor; its id."""
    boss = await kefu.add_agent("王经理", role=AgentRole.SUPERVISOR, online=True)
    _, invoice = await kefu.queued_customer("转人工，发票抬头开错了，电话 13812345678")
    _, parcel = await kefu.queued_customer("我要投诉，快递三天没动")
    for cid, waited in ((invoice, 42), (parcel, 150)):  # they came a while ago
        queued = await kefu.store.get_conversation(cid)
        assert queued is not None
        await kefu.store.save_conversation(replace(queued, queued_at=time.time() - waited))
    visitor, held = await kefu.queued_customer("转人工，订单 A1024 想改地址，电话 13700002222")
    await kefu.desk.take(boss, held)
    await kefu.desk.reply(boss, held, "您好，我是王经理，马上为您查询订单 A1024。")
    await visitor.say("好的，改到 上海市徐汇区漕溪北路 88 号")
    await kefu.store.set_labels(held, ["改地址", "加急"])
    conversation = await kefu.store.get_conversation(held)
    assert conversation is not None
    await kefu.store.save_conversation(replace(conversation,
                                               awaiting_agent_since=time.time() - 75))
    return held


async def shoot(folder: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        kefu = await Kefu(config(Path(work))).start()
        try:
            await seed(kefu.store, generate())
            await close_seeded_queue(kefu)
            held = await scene(kefu)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                           headless=True, args=LAUNCH_ARGS)
                page = await browser.new_page(viewport=SIZE, locale="zh-CN")
                await log_in(page, kefu)
                await page.get_by_role("tab", name="待接入").click()
                await page.wait_for_timeout(500)
                await page.screenshot(path=str(folder / "console-inbox.png"))
                await page.get_by_role("tab", name="我的").click()
                await page.locator(f'#inbox li[data-id="{held}"]').click()
                await page.get_by_role("button", name="内部备注").click()
                await page.locator("#reply").fill("客户要改地址，已联系仓库拦截")
                await page.locator("#reply").press("Enter")
                await page.locator("#customer-name-input").fill("陈女士")
                await page.locator("#customer-tags-input").fill("老客户")
                await page.locator("#customer-form button").click()
                await page.locator("#customer-name", has_text="陈女士").wait_for()
                await page.get_by_role("button", name="回复").click()
                await page.locator("#reply").fill("已为您联系仓库，稍后回复您")
                await page.locator("#picker").wait_for(state="hidden")
                await page.wait_for_timeout(300)
                await page.screenshot(path=str(folder / "console-chat.png"))
                await page.goto(url(kefu, f"/agent/report?from={WEEK.first}&to={WEEK.last}"))
                await page.screenshot(path=str(folder / "console-report.png"))
                await browser.close()
        finally:
            await kefu.stop()


async def log_in(page: Page, kefu: Kefu) -> None:
    await page.goto(url(kefu, "/agent/login"))
    await page.get_by_label("账号 Name").fill("王经理")
    await page.get_by_label("密码 Password").fill("correct horse")
    await page.get_by_role("button", name="登录 Log in").click()
    await page.locator("#live.on").wait_for()


if __name__ == "__main__":
    images = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    images.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(images))
