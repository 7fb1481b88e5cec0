"""The web chat protocol (docs/webchat-protocol.md) against a real server and real sockets."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import WSMsgType

from bot.config import Config
from tests.harness import Kefu


async def test_resend_with_same_client_msg_id_is_acknowledged_but_processed_once(
    kefu: Kefu,
) -> None:
    visitor = await kefu.visitor()
    first = await visitor.say("退货怎么办", client_msg_id="same-id")
    assert [r["kind"] for r in first] == ["greeting", "answer"]
    await visitor.send({"type": "message", "text": "退货怎么办", "client_msg_id": "same-id"})
    ack = (await visitor.receive_until("ack"))[-1]
    assert ack["duplicate"] is True
    await visitor.settle()
    conversation = await kefu.store.latest_conversation("webchat", visitor.id)
    assert conversation is not None
    transcript = await kefu.store.messages(conversation.id)
    assert [m.kind.value for m in transcript] == ["text", "greeting", "answer"]


async def test_reconnect_replays_the_whole_conversation(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.say("退货怎么办")
    await visitor.disconnect()
    again = await kefu.visitor(visitor.id)
    frames = [await again.receive() for _ in range(4)]  # state, then the 3 messages
    assert frames[0]["type"] == "state" and frames[0]["state"] == "bot"
    assert [(f["role"], f["kind"]) for f in frames[1:]] == [
        ("customer", "text"), ("bot", "greeting"), ("bot", "answer")]
    assert [f["seq"] for f in frames[1:]] == [1, 2, 3]
    assert await again.open() == []  # resuming is not a new conversation: no second greeting


async def test_reconnect_after_seq_gets_only_what_was_missed(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.open()
    await visitor.send({"type": "message", "text": "退货怎么办", "client_msg_id": "m1"})
    ack = (await visitor.receive_until("ack"))[-1]
    await visitor.disconnect()  # gone before the answer could arrive
    await kefu.router.idle()
    again = await kefu.visitor(visitor.id, conversation=ack["conversation_id"],
                               after=str(ack["seq"]))
    state = await again.receive()
    missed = await again.receive()
    assert state["type"] == "state"
    assert missed["kind"] == "answer" and missed["seq"] == ack["seq"] + 1


async def test_reconnect_with_an_unknown_conversation_gets_everything(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.say("退货怎么办")
    await visitor.disconnect()
    again = await kefu.visitor(visitor.id, conversation="someone-elses", after="99")
    frames = [await again.receive() for _ in range(4)]
    assert [f.get("seq") for f in frames] == [None, 1, 2, 3]


async def test_restart_loses_nothing(make_config: Callable[..., Config]) -> None:
    config = make_config()
    first_run = await Kefu(config).start()
    visitor = await first_run.visitor("customer-restart-1")
    await visitor.say("退货怎么办")
    await first_run.stop()

    second_run = await Kefu(config).start()
    try:
        again = await second_run.visitor("customer-restart-1")
        replayed = [await again.receive() for _ in range(4)]
        assert [f.get("kind") for f in replayed] == [None, "text", "greeting", "answer"]
        assert [r["kind"] for r in await again.say("什么时候退款")] == ["answer"]
    finally:
        await second_run.stop()


# bad input: a clear error frame or close code, never a crash; others unaffected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("this is not json", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        ({"type": "teleport"}, "unknown_type"),
        ({"type": "message", "text": "   ", "client_msg_id": "e1"}, "empty_text"),
        ({"type": "message", "text": 42, "client_msg_id": "e2"}, "empty_text"),
        ({"type": "message", "text": "hi"}, "bad_client_msg_id"),
        ({"type": "message", "text": "hi", "client_msg_id": "<script>"}, "bad_client_msg_id"),
        ({"type": "message", "text": "长" * 2001, "client_msg_id": "e3"}, "text_too_long"),
        ({"type": "rating", "score": 9}, "bad_rating"),
        ({"type": "rating", "score": True}, "bad_rating"),
    ],
)
async def test_bad_frames_get_an_error_and_the_chat_goes_on(
    kefu: Kefu, frame: object, code: str
) -> None:
    visitor = await kefu.visitor()
    await visitor.send(frame if isinstance(frame, str) else json.dumps(frame))
    error = await visitor.receive()
    assert error["type"] == "error" and error["code"] == code
    assert error["message"]
    assert [r["kind"] for r in await visitor.say("退货怎么办")] == ["greeting", "answer"]


async def test_binary_frame_is_refused_with_an_error(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    assert visitor.ws is not None
    await visitor.ws.send_bytes(b"\x00\x01")
    assert (await visitor.receive())["code"] == "binary"


async def test_oversized_frame_closes_with_1009(make_config: Callable[..., Config]) -> None:
    kefu = await Kefu(make_config(channels={"webchat": {"max_frame_bytes": 1024}})).start()
    try:
        visitor = await kefu.visitor()
        await visitor.send({"type": "message", "text": "x" * 2000, "client_msg_id": "big"})
        assert visitor.ws is not None
        msg = await visitor.ws.receive(timeout=5)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert visitor.ws.close_code == 1009
        other = await kefu.visitor()
        assert [r["kind"] for r in await other.say("退货怎么办")] == ["greeting", "answer"]
    finally:
        await kefu.stop()


async def test_invalid_utf8_closes_with_1007_and_others_are_unaffected(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    assert visitor.ws is not None
    await visitor.ws.send_frame(b'{"type":"message","text":"\xff\xfe"}', WSMsgType.TEXT)
    msg = await visitor.ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert visitor.ws.close_code == 1007
    other = await kefu.visitor()
    assert [r["kind"] for r in await other.say("退货怎么办")] == ["greeting", "answer"]


async def test_flood_is_rate_limited_then_closed_and_others_are_unaffected(
    make_config: Callable[..., Config],
) -> None:
    limits = {"rate_limit_messages": 3, "rate_limit_seconds": 60,
              "rate_limit_strikes_before_close": 2}
    kefu = await Kefu(make_config(channels={"webchat": limits})).start()
    try:
        flooder = await kefu.visitor()
        for i in range(6):
            await flooder.send({"type": "message", "text": "退货怎么办", "client_msg_id": f"f{i}"})
        frames = []
        with pytest.raises(ConnectionError, match="CLOSE"):
            while True:
                frames.append(await flooder.receive())
        assert flooder.ws is not None and flooder.ws.close_code == 1008
        acks = [f for f in frames if f["type"] == "ack"]
        limited = [f for f in frames if f.get("code") == "rate_limited"]
        assert [a["client_msg_id"] for a in acks] == ["f0", "f1", "f2"]
        assert [e["client_msg_id"] for e in limited] == ["f3"]  # told it was not taken
        other = await kefu.visitor()
        assert [r["kind"] for r in await other.say("退货怎么办")] == ["greeting", "answer"]
    finally:
        await kefu.stop()


async def test_a_deeply_nested_frame_is_bad_json_and_the_chat_goes_on(kefu: Kefu) -> None:
    visitor = await kefu.visitor()
    await visitor.send("[" * 15_000)
    error = await visitor.receive()
    assert error["type"] == "error" and error["code"] == "bad_json"
    assert [r["kind"] for r in await visitor.say("退货怎么办")] == ["greeting", "answer"]


async def test_a_flood_of_junk_frames_is_limited_like_messages(
    make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture,
) -> None:
    limits = {"rate_limit_messages": 5, "rate_limit_seconds": 60,
              "rate_limit_strikes_before_close": 3}
    kefu = await Kefu(make_config(channels={"webchat": limits})).start()
    try:
        flooder = await kefu.visitor()
        assert flooder.ws is not None
        with contextlib.suppress(ConnectionError):
            for _ in range(10_000):
                await flooder.ws.send_str("x")
        frames = []
        with pytest.raises(ConnectionError, match="CLOSE"):
            while True:
                frames.append(await flooder.receive())
        assert flooder.ws.close_code == 1008
        assert [f["code"] for f in frames] == ["bad_json"] * 5 + ["rate_limited"] * 2
        other = await kefu.visitor()
        assert [r["kind"] for r in await other.say("退货怎么办")] == ["greeting", "answer"]
        webchat_lines = [r for r in caplog.records if r.name == "channels.webchat.channel"]
        assert len(webchat_lines) <= 10
    finally:
        await kefu.stop()


@pytest.mark.parametrize("query", ["", "?visitor=short", "?visitor=has%20space%20in%20it",
                                   "?visitor=abcdefgh12&after=x"])
async def test_bad_connect_parameters_are_refused(kefu: Kefu, query: str) -> None:
    assert kefu.client is not None
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await kefu.client.ws_connect("/chat/ws" + query)
    assert refused.value.status == 400


async def test_origin_allow_list(make_config: Callable[..., Config]) -> None:
    config = make_config(channels={"webchat": {"allowed_origins": ["https://shop.example"]}})
    kefu = await Kefu(config).start()
    try:
        assert kefu.client is not None
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await kefu.client.ws_connect("/chat/ws?visitor=abcdefgh12",
                                         headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        ws = await kefu.client.ws_connect("/chat/ws?visitor=abcdefgh12",
                                          headers={"Origin": "https://shop.example"})
        await ws.close()
    finally:
        await kefu.stop()


async def test_widget_and_demo_page_are_served(kefu: Kefu) -> None:
    assert kefu.client is not None
    page = await kefu.client.get("/")
    text = await page.text()
    assert page.status == 200 and '<script src="/widget.js"' in text
    assert f'&lt;script src="http://127.0.0.1:{kefu.client.port}/widget.js" defer' in text
    served = await (await kefu.client.get("/", headers={"Host": "shop.example:9000"})).text()
    assert 'src="http://shop.example:9000/widget.js"' in served
    proxied = await (await kefu.client.get("/", headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "kefu.example.com"})).text()
    assert 'src="https://kefu.example.com/widget.js"' in proxied
    forged = await (await kefu.client.get("/", headers={
        "X-Forwarded-Host": 'x"><script>alert(1)</script>'})).text()
    assert "<script>alert" not in forged
    widget = await kefu.client.get("/widget.js")
    assert widget.status == 200
    assert widget.content_type == "application/javascript"
    assert "chat/ws" in await widget.text()
