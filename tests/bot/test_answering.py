"""Matching in processes beside kefu's own (`matching.processes`, as shipped): the same
answers as in threads, a reload reaches them, a killed one is replaced without a customer
waiting, and none outlives kefu."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

from bot.answering import InProcesses, InThreads
from bot.config import Config
from tests.harness import Kefu, wait_for

# Questions and small talk: the process reads the whole message, not only the matching.
QUESTIONS = ["退货怎么办", "请问 可以退货吗？", "退款多久才到账啊", "what are your opening hours",
             "客服电话多少", "我的包裹好像丢了", "今天天气怎么样", "谢谢", "thanks a lot"]


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def replies(kefu: Kefu, questions: list[str]) -> list[list[tuple[str, str]]]:
    said = []
    for question in questions:
        visitor = await (await kefu.visitor()).connect()
        await visitor.open()
        said.append([(m["kind"], m["text"]) for m in await visitor.say(question)])
        await visitor.disconnect()
    return said


def _no_clock(replies: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    return [[(kind, re.sub(r"\d\d:\d\d", "HH:MM", text)) for kind, text in said]
            for said in replies]


async def test_a_matching_process_answers_as_the_threads_do(
        make_config: Callable[..., Config]) -> None:
    in_threads = await Kefu(make_config(matching={"processes": 0})).start()
    try:
        assert isinstance(in_threads.router.answering, InThreads)
        expected = await replies(in_threads, QUESTIONS)
    finally:
        await in_threads.stop()
    kefu = await Kefu(make_config(matching={"processes": 1})).start()
    try:
        answering = kefu.router.answering
        assert isinstance(answering, InProcesses)
        (pid,) = answering.pids
        assert pid != os.getpid() and alive(pid)
        # an offline prompt names a deadline by the clock: the two runs may be a minute apart
        assert _no_clock(await replies(kefu, QUESTIONS)) == _no_clock(expected)
        assert ("answer", "签收后 7 天内可以无理由退货。") in expected[0]
        assert [kind for kind, _ in expected[7]] == ["small_talk"], expected[7]
    finally:
        await kefu.stop()
    assert not alive(pid), "the matching process outlived kefu"


async def test_a_reload_reaches_the_matching_process(
        make_config: Callable[..., Config], tmp_path: Path) -> None:
    kefu = await Kefu(make_config(matching={"processes": 1})).start()
    try:
        (before,) = await replies(kefu, ["发票怎么开"])
        assert ("answer", "下单时填写发票抬头即可。") not in before
        folder = kefu.config.knowledge_base.path
        (folder / "invoice.yaml").write_text(
            "lang: zh\nentries:\n  - id: invoice\n    questions: [发票怎么开, 可以开发票吗]\n"
            "    answer: 下单时填写发票抬头即可。\n", encoding="utf-8")
        assert await kefu.knowledge_base.reload_if_changed()
        (said,) = await replies(kefu, ["发票怎么开"])
        assert ("answer", "下单时填写发票抬头即可。") in said
    finally:
        await kefu.stop()


async def test_a_killed_matching_process_is_replaced_and_no_customer_waits(
        make_config: Callable[..., Config]) -> None:
    kefu = await Kefu(make_config(matching={"processes": 1})).start()
    try:
        answering = kefu.router.answering
        assert isinstance(answering, InProcesses)
        (first,) = answering.pids
        assert first is not None
        os.kill(first, signal.SIGSTOP)  # it holds the next question when it dies
        asking = asyncio.create_task(replies(kefu, ["退货怎么办"]))
        await wait_for(lambda: answering.in_flight == 1)
        os.kill(first, signal.SIGKILL)
        # Answered at once, in a thread, while the replacement loads its model.
        (said,) = await asyncio.wait_for(asking, 10)
        assert ("answer", "签收后 7 天内可以无理由退货。") in said
        assert not alive(first)
        await wait_for(lambda: len(answering.pids) == 1, within=60)
        (second,) = answering.pids
        assert second != first and alive(second)
        (said,) = await replies(kefu, ["退款多久到账"])
        assert ("answer", "退款 1-3 个工作日到账。") in said
    finally:
        await kefu.stop()
    assert not alive(second)
