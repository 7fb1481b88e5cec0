"""Every promise under each fault, for real: redis-server processes of the tests' own (on
other ports, with an append-only file), kefu processes SIGKILLed, Redis SIGKILLed,
SIGTERMed and SIGSTOPped, and customers who follow docs/webchat-protocol.md. The soak
(`python -m benchmarks soak`) runs the same scenarios at 200 and 1,000 customers; these
are bounded to fit CI."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import WSCloseCode, WSMsgType
from redis.exceptions import BusyLoadingError

from benchmarks.soak import SCENARIOS, Scenario, run
from benchmarks.soak.fleet import RedisServer
from bot.app import CHANNELS
from bot.cluster import RedisFanout
from bot.config import Config
from bot.messages import Kind, Role
from bot.store import NewMessage
from bot.store.redis import connect
from tests.harness import Kefu

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (CI installs it)")
CUSTOMERS = 12
QUESTIONS_EACH = 3


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name.split(" (")[0])
async def test_every_promise_holds(scenario: Scenario, tmp_path: Path) -> None:
    counts = await run(scenario, CUSTOMERS, QUESTIONS_EACH, folder=tmp_path)
    assert counts.questions == CUSTOMERS * QUESTIONS_EACH
    assert (counts.unacknowledged, counts.frozen, counts.unanswered, counts.duplicates,
            counts.not_greeted, counts.unseen, counts.out_of_order) == (0, 0, 0, 0, 0, 0, 0), \
        counts


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def on_redis(redis_server: RedisServer, make_config: Callable[..., Config]
                   ) -> AsyncIterator[Kefu]:
    """kefu in the test's process on its own redis-server; short leases, so a stopped
    Redis is given up on within seconds."""
    kefu = await Kefu(make_config(store={
        "type": "redis", "url": redis_server.url, "prefix": "faults:", "lease_seconds": 1,
        "lease_wait_seconds": 2})).start()
    yield kefu
    await kefu.stop()


async def test_a_message_redis_cannot_take_is_refused_and_the_socket_goes_on(
    on_redis: Kefu, redis_server: RedisServer
) -> None:
    visitor = await on_redis.visitor()
    await visitor.open()
    redis_server.send(signal.SIGSTOP)  # unreachable: connections open, nothing answered
    try:
        await visitor.send({"type": "message", "text": "退货怎么办", "client_msg_id": "m1"})
        refused = await visitor.receive_until("error")
    finally:
        redis_server.send(signal.SIGCONT)
    assert (refused[-1]["code"], refused[-1]["client_msg_id"]) == ("not_stored", "m1")
    # The same socket and the same lane take the resent message once Redis answers again.
    answers = await visitor.say("退货怎么办", client_msg_id="m1")
    assert [a["text"] for a in answers] == ["签收后 7 天内可以无理由退货。"]


async def test_news_missed_while_redis_restarted_reaches_the_connected_customer(
    redis_server: RedisServer, make_config: Callable[..., Config]
) -> None:
    kefu = await Kefu(make_config(
        store={"type": "redis", "url": redis_server.url, "prefix": "news:"},
        conversation={"recovery_after_seconds": 600})).start()  # recovery is not the one
    try:
        visitor = await kefu.visitor()
        await visitor.open()
        conversation = await kefu.store.latest_conversation("webchat", visitor.id)
        assert conversation is not None
        # Stored, and its news lost with the connection: Redis is killed right after.
        missed = await kefu.store.append_message(conversation, NewMessage(
            role=Role.BOT, kind=Kind.NOTICE, text="我们还在", ts=time.time()))
        await redis_server.exit(signal.SIGKILL)
        await redis_server.start()  # on its append-only file; redis-py subscribes again
        frames = await visitor.receive_until("message")
        assert missed is not None and (frames[-1]["seq"], frames[-1]["text"]) == (
            missed.seq, "我们还在")
    finally:
        await kefu.stop()


async def test_a_busy_redis_pool_waits_for_a_connection_instead_of_failing(
    redis_server: RedisServer, make_config: Callable[..., Config]
) -> None:
    kefu = await Kefu(make_config(store={"type": "redis", "url": redis_server.url,
                                         "prefix": "pool:", "max_connections": 4})).start()
    try:
        visitors = [await kefu.visitor() for _ in range(30)]
        opened = await asyncio.gather(*(v.open() for v in visitors))
        assert all(any(m["kind"] == "greeting" for m in said) for said in opened)
    finally:
        await kefu.stop()


async def test_a_replay_the_store_cannot_give_closes_with_try_again_later(
    on_redis: Kefu, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    visitor = await on_redis.visitor()
    await visitor.open()
    await visitor.send({"type": "message", "text": "退货怎么办", "client_msg_id": "m1"})
    ack = (await visitor.receive_until("ack"))[-1]
    await visitor.disconnect()  # the answer is stored after: the customer missed it
    await on_redis.router.idle()
    await redis_server.exit(signal.SIGTERM)  # restarting: connections refused meanwhile
    resume = {"conversation": ack["conversation_id"], "after": str(ack["seq"])}
    try:
        await visitor.connect(**resume)
        assert visitor.ws is not None
        started = time.monotonic()
        closing = await visitor.ws.receive(timeout=30)
        closed_after = time.monotonic() - started
        assert (closing.type, visitor.ws.close_code) == (WSMsgType.CLOSE,
                                                         WSCloseCode.TRY_AGAIN_LATER)
        assert closed_after < 15, closed_after  # the store's own retries, then the close
    finally:
        await redis_server.start()
    webchat = on_redis.app[CHANNELS]["webchat"]
    assert not await webchat.is_present(visitor.id)  # what the agents' board shows
    start = len(visitor.frames)
    await visitor.connect(**resume)  # the client reconnects, as told by 1013
    await visitor.settle()
    said = [f for f in visitor.frames[start:] if f["type"] == "message"]
    stored = await on_redis.store.messages(ack["conversation_id"], ack["seq"])
    assert [(f["seq"], f["text"]) for f in said] == [(m.seq, m.text) for m in stored]
    assert said[0]["text"] == "签收后 7 天内可以无理由退货。"
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"


async def test_a_catch_up_that_keeps_failing_is_given_up_after_catch_up_seconds(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(redis_server.url)
    fanout = RedisFanout(client, "catch-up:", catch_up_seconds=1.5)
    heard: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    tried: asyncio.Queue[float] = asyncio.Queue()

    async def hear(news: dict[str, str]) -> None:
        await heard.put(news)

    async def catch_up() -> None:  # as while Redis loads a large append-only file
        await tried.put(time.monotonic())
        raise BusyLoadingError("Redis is loading the dataset in memory")

    fanout.subscribe("t", hear)
    fanout.on_reconnect(catch_up)
    await fanout.start()
    try:
        await redis_server.exit(signal.SIGKILL)
        await redis_server.start()
        tries = [await asyncio.wait_for(tried.get(), 20)]
        with contextlib.suppress(TimeoutError):
            while True:  # until no try comes for longer than the longest pause, 2 s
                tries.append(await asyncio.wait_for(tried.get(), 3))
        assert len(tries) > 1 and tries[-1] - tries[0] <= 1.5, tries
        assert "news missed in the break stays missed" in caplog.text
        await fanout.publish("t", {"after": "the break"})  # news flows again
        assert await asyncio.wait_for(heard.get(), 10) == {"after": "the break"}
    finally:
        await fanout.aclose()
        await client.aclose()
