"""What the bot makes of a message, seen by a customer: small talk answered politely, replies
in the customer's language, and `kefu kb ask` telling exactly what the live bot does."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Config
from bot.messages import ConversationState, Kind
from bot.understanding import reader_for
from knowledge_base.review import load_regressions
from tests.conftest import PROJECT
from tests.harness import Kefu


async def test_small_talk_gets_a_polite_reply_and_never_a_person(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    replies = await visitor.say("你好")
    assert [r["kind"] for r in replies] == ["greeting"]  # the greeting answered the hello
    assert (await visitor.say("在吗？"))[0]["text"] == "在的，请问有什么可以帮您？"
    for text in ("谢谢", "好的", "谢谢啦😊", "嗯嗯"):
        (reply,) = await visitor.say(text)
        assert reply["kind"] == "small_talk"
    assert (await visitor.say("拜拜"))[0]["text"] == "感谢您的咨询，祝您生活愉快，再见！"
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None and conversation.state is ConversationState.BOT
    assert conversation.consecutive_misses == 0
    assert await kefu.store.unanswered() == []  # nothing counted as a question missed


async def test_a_greeting_with_a_question_is_a_question(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    replies = await visitor.say("你好，请问一下可以退货吗？")
    assert [r["kind"] for r in replies] == ["greeting", "answer"]
    assert replies[1]["text"] == "签收后 7 天内可以无理由退货。"


async def test_small_talk_replies_come_from_texts(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(texts={"zh": {"smalltalk_thanks": "不客气，祝您购物愉快！"}})
    kefu = await Kefu(config).start()
    try:
        visitor = await kefu.visitor()
        await visitor.open()
        assert (await visitor.say("多谢"))[0]["text"] == "不客气，祝您购物愉快！"
    finally:
        await kefu.stop()


async def test_the_bot_replies_in_the_language_of_the_message(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.open(lang="zh")
    (answer,) = await visitor.say("when do you open?")
    assert answer["kind"] == "answer" and answer["text"].startswith("We work")
    (fallback,) = await visitor.say("can you write me a poem")
    assert fallback["kind"] == "fallback" and fallback["text"].startswith("Sorry")
    assert fallback["quick_replies"] == ["Talk to a person"]
    (thanks,) = await visitor.say("thank you!")
    assert thanks["kind"] == "small_talk"
    assert thanks["text"] == "You're welcome! Ask me anything else any time."
    (ok,) = await visitor.say("ok")  # too short to tell: the conversation's language stays
    assert ok["text"].startswith("All right")
    (back,) = await visitor.say("可以退货吗")
    assert back["text"] == "签收后 7 天内可以无理由退货。"
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None and conversation.lang == "zh"
    (handoff,) = await visitor.say("I'd like to talk to a human please")
    assert handoff["kind"] == "handoff" and handoff["text"].startswith("Sure, I'm passing you")


async def test_a_first_message_in_english_on_a_chinese_page_is_greeted_in_english(
    kefu: Kefu,
) -> None:
    visitor = await kefu.visitor()
    await visitor.send({"type": "message", "text": "what are your opening hours",
                        "client_msg_id": "m1", "lang": "zh"})
    await visitor.receive_until("ack")
    await visitor.settle()
    greeting, answer = [f for f in visitor.frames if f["type"] == "message"
                        and f["role"] == "bot"]
    assert "Welcome" in greeting["text"] and answer["text"].startswith("We work")


@pytest.fixture
async def shipped(make_config: Callable[..., Config], tmp_path: Path) -> Kefu:
    """kefu with the shipped sample knowledge base, vocabulary and regressions."""
    shutil.copytree(PROJECT / "kb", tmp_path / "shipped-kb")
    config = make_config(knowledge_base={
        "path": str(tmp_path / "shipped-kb"), "regressions": str(PROJECT / "regressions.yaml"),
        "vocabulary": str(PROJECT / "vocabulary.yaml")})
    return await Kefu(config).start()


async def test_kb_ask_and_the_live_bot_agree_on_every_regression(shipped: Kefu) -> None:
    """Each regression's question, asked by a new customer of the running bot, gets what the
    regression expects, which is what `kefu kb ask` (the same reader) says it would do."""
    try:
        expectations = load_regressions(PROJECT / "regressions.yaml")
        reader = reader_for(shipped.config)
        kb = shipped.knowledge_base.current
        assert len(expectations) >= 20
        for expected in expectations:
            said = reader.read(kb, expected.question, "zh").outcome
            visitor = await shipped.visitor()
            await visitor.open(lang="zh")
            replies = await visitor.say(expected.question)
            conversation = await shipped.store.latest_conversation("webchat", visitor.id)
            assert conversation is not None
            transcript = await shipped.store.messages(conversation.id)
            kinds = {m.kind for m in transcript}
            answered = [m.meta.get("entry") for m in transcript if m.kind is Kind.ANSWER]
            did = (answered[0] if answered else
                   "handoff" if kinds & {Kind.HANDOFF, Kind.OFFLINE} else
                   "small_talk" if Kind.SMALL_TALK in kinds else "decline")
            assert (expected.question, did, said) == \
                (expected.question, expected.expect, expected.expect), replies
    finally:
        await shipped.stop()


async def test_the_talk_to_a_person_button_hands_over_in_every_language(kefu: Kefu) -> None:
    for lang, button in (("en", "Talk to a person"), ("zh", "人工客服")):
        visitor = await kefu.visitor()
        await visitor.open(lang=lang)
        replies = await visitor.say(button)
        assert replies[-1]["kind"] == "handoff"
        conversation = await kefu.store.latest_conversation("webchat", visitor.id)
        assert conversation is not None and conversation.handoff_reason == "request"
