"""Hot reload: staff edit a file, the running bot picks it up; a broken edit changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.config import Config
from tests.conftest import TEST_KB
from tests.harness import Kefu, wait_for

NEW_ENTRY = """
  - id: gift-wrap
    questions: [可以包装成礼物吗, 有礼品包装吗]
    answer: 可以，下单时勾选“礼品包装”。
"""


async def test_edit_is_served_and_a_broken_edit_keeps_the_last_good_one(
    kefu: Kefu, caplog: pytest.LogCaptureFixture
) -> None:
    live = kefu.knowledge_base
    folder: Path = kefu.config.knowledge_base.path
    visitor = await kefu.visitor()
    await visitor.open()
    assert (await visitor.say("有礼品包装吗"))[0]["kind"] != "answer"

    (folder / "returns.yaml").write_text(TEST_KB["returns.yaml"] + NEW_ENTRY, encoding="utf-8")
    assert await live.reload_if_changed()
    assert (await visitor.say("有礼品包装吗"))[0]["text"] == "可以，下单时勾选“礼品包装”。"
    # In other words too: the reload embedded the new questions for the semantic engine.
    (reply,) = await visitor.say("送人的，能帮我包得好看一点吗")
    assert reply["text"] == "可以，下单时勾选“礼品包装”。"
    cache = np.load(kefu.config.matching.vector_cache / "use-multilingual-v3.npz")
    assert "可以包装成礼物吗" in cache["texts"].tolist()

    (folder / "returns.yaml").write_text("entries:\n  - id: [broken\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert not await live.reload_if_changed()
    assert "knowledge base edit rejected" in caplog.text
    assert live.last_problems and "returns.yaml" in live.last_problems[0]
    assert (await visitor.say("有礼品包装吗"))[0]["text"] == "可以，下单时勾选“礼品包装”。"
    assert kefu.client is not None
    response = await kefu.client.get("/healthz")
    health = await response.json()
    assert response.status == 200  # still answering, from the last good knowledge base
    assert health["status"] == "degraded"
    assert health["knowledge_base_problems"] == live.last_problems

    (folder / "returns.yaml").write_text(
        "entries:\n  - {id: a, questions: [退款], answer: 好}\n"
        "  - {id: b, questions: [退款], answer: 好的}\n", encoding="utf-8")
    assert not await live.reload_if_changed()
    body = await (await kefu.client.get("/healthz")).text()
    assert "question '退款' is also in entry 'a'" in body  # readable, not \u9000
    (folder / "returns.yaml").write_text(TEST_KB["returns.yaml"], encoding="utf-8")
    assert await live.reload_if_changed()
    health = await (await kefu.client.get("/healthz")).json()
    assert (health["status"], health["knowledge_base_problems"]) == ("ok", [])


async def test_the_running_bot_notices_edits_by_itself(
    make_config: Callable[..., Config],
) -> None:
    kefu = await Kefu(make_config(knowledge_base={"reload_interval_seconds": 0.05})).start()
    try:
        folder: Path = kefu.config.knowledge_base.path
        (folder / "gifts.yaml").write_text("entries:" + NEW_ENTRY, encoding="utf-8")

        async def served() -> bool:
            entries = kefu.knowledge_base.current.entries
            return any(e.id == "gift-wrap" for e in entries)

        await wait_for(served, within=30)  # a process of its own loads the model
    finally:
        await kefu.stop()


async def test_a_heavy_template_is_rejected_at_reload_and_answers_go_on(kefu: Kefu) -> None:
    live = kefu.knowledge_base
    folder: Path = kefu.config.knowledge_base.path
    heavy = NEW_ENTRY.replace("可以，下单时勾选“礼品包装”。", (
        '"{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}'
        '{% endfor %}{% endfor %}{% endfor %}"'))
    (folder / "returns.yaml").write_text(TEST_KB["returns.yaml"] + heavy, encoding="utf-8")
    assert not await live.reload_if_changed()
    assert "takes more than 50 ms to render" in live.last_problems[0]
    visitor = await kefu.visitor()
    await visitor.open()
    assert (await visitor.say("退货怎么办"))[0]["text"] == "签收后 7 天内可以无理由退货。"
