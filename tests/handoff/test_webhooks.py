"""Outbound webhooks to a local receiver that fails, hangs, or goes away for a while."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.config import Config
from bot.store import AgentRole, DeliveryStatus, Ticket
from tests.channels.local import serve
from tests.harness import Kefu, wait_for

SECRET = "receiver-secret-0123456789"


@dataclass
class Receiver:
    """A CRM's webhook endpoint: checks signatures, drops repeats by event id."""

    failures_left: int = 0  # answer 500 to this many requests first
    hang: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # by event id
    server: TestServer | None = None
    url: str = ""

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/kefu", self._receive)
        self.server, base = await serve(app)
        self.url = f"{base}/kefu"
        return self

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.text()
        timestamp = request.headers["X-Kefu-Timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.{body}".encode(),
                                        hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(expected, request.headers["X-Kefu-Signature"])
        self.requests.append({"signed": signed, "id": request.headers["X-Kefu-Event-Id"],
                              "type": request.headers["X-Kefu-Event"]})
        if self.hang:
            await asyncio.Event().wait()
        if self.failures_left > 0:
            self.failures_left -= 1
            return web.Response(status=500)
        if not signed:
            return web.Response(status=401)
        event = json.loads(body)
        self.events.setdefault(event["id"], event)  # a repeat changes nothing
        return web.Response(status=204)

    def types(self) -> list[str]:
        return sorted(e["type"] for e in self.events.values())


def webhook_config(make_config: Callable[..., Config], receiver: Receiver, store: Path,
                   **more: Any) -> Config:
    return make_config(
        desk={"auto_assign": False},
        store={"path": str(store)},
        webhooks={"endpoints": [{"name": "crm", "url": receiver.url, "secret": SECRET}],
                  "public_url": "https://kefu.example.com", "tick_seconds": 0.05,
                  "first_retry_seconds": 0.05, "timeout_seconds": 1, **more})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    yield started
    assert started.server is not None
    await started.server.close()


async def test_a_served_conversation_reaches_the_crm_signed_despite_failures(
        make_config: Callable[..., Config], receiver: Receiver, tmp_path: Path) -> None:
    receiver.failures_left = 3
    kefu = await Kefu(webhook_config(make_config, receiver, tmp_path / "k.sqlite3")).start()
    try:
        await kefu.add_agent("duty", online=True)
        customer, conversation_id = await kefu.queued_customer("转人工")
        duty = await kefu.agent("duty")
        await duty.act(conversation_id, "take")
        await duty.act(conversation_id, "close")
        await customer.say("5")
        await wait_for(lambda: len(receiver.events) == 5, within=10)
    finally:
        await kefu.stop()
    assert receiver.types() == ["conversation.assigned", "conversation.closed",
                                "conversation.handed_off", "conversation.started",
                                "rating.received"]
    assert all(r["signed"] for r in receiver.requests)
    assert len(receiver.requests) == 5 + 3  # the failed attempts were tried again
    closed = next(e for e in receiver.events.values() if e["type"] == "conversation.closed")
    assert closed["data"]["conversation_id"] == conversation_id
    assert closed["data"]["transcript_url"] == (
        f"https://kefu.example.com/agent/api/conversations/{conversation_id}/transcript")
    rating = next(e for e in receiver.events.values() if e["type"] == "rating.received")
    assert rating["data"]["rating"] == 5


async def test_nothing_is_lost_while_the_crm_is_down_across_a_restart(
        make_config: Callable[..., Config], receiver: Receiver, tmp_path: Path) -> None:
    store = tmp_path / "k.sqlite3"
    receiver.failures_left = 10**6  # down
    first = await Kefu(webhook_config(make_config, receiver, store)).start()
    try:
        await first.add_agent("duty", online=True)
        await first.queued_customer("转人工")
        await wait_for(lambda: len(receiver.requests) >= 2)
    finally:
        await first.stop()
    assert receiver.events == {}
    receiver.failures_left = 0  # back up; kefu restarts
    second = await Kefu(webhook_config(make_config, receiver, store)).start()
    try:
        await wait_for(lambda: len(receiver.events) == 2, within=10)
    finally:
        await second.stop()
    assert receiver.types() == ["conversation.handed_off", "conversation.started"]


async def test_a_hanging_crm_never_holds_up_a_customer(
        make_config: Callable[..., Config], receiver: Receiver, tmp_path: Path) -> None:
    receiver.hang = True
    kefu = await Kefu(webhook_config(make_config, receiver, tmp_path / "k.sqlite3",
                                     timeout_seconds=30)).start()
    try:
        visitor = await kefu.visitor()
        first = await visitor.say("退货怎么办")
        await wait_for(lambda: receiver.requests != [])  # the CRM is stuck on the first event
        second = await visitor.say("退款多久到账")
        assert [m["kind"] for m in first] == ["greeting", "answer"]
        assert [m["kind"] for m in second] == ["answer"]
        assert receiver.events == {}  # still hanging, and the customer was answered
    finally:
        await kefu.stop()


async def test_given_up_deliveries_are_shown_to_supervisors_who_can_resend(
        make_config: Callable[..., Config], receiver: Receiver, tmp_path: Path) -> None:
    receiver.failures_left = 2
    kefu = await Kefu(webhook_config(make_config, receiver, tmp_path / "k.sqlite3",
                                     max_attempts=2)).start()
    try:
        await kefu.add_agent("boss", role=AgentRole.SUPERVISOR)
        await kefu.add_agent("duty")
        visitor = await kefu.visitor()
        await visitor.open()
        await wait_for(lambda: len(receiver.requests) == 2)
        await wait_for(lambda: kefu.store.deliveries(DeliveryStatus.FAILED))
        boss, duty = await kefu.agent("boss"), await kefu.agent("duty")
        shown = await boss.get("/webhooks")
        (failed,) = shown["failed"]
        assert (failed["type"], failed["attempts"], failed["last_error"]) == (
            "conversation.started", 2, "HTTP 500")
        assert kefu.client is not None
        refused = await kefu.client.get("/agent/api/webhooks", headers=duty.headers)
        assert refused.status == 403
        await boss.post(f"/webhooks/{failed['id']}/retry")
        await wait_for(lambda: len(receiver.events) == 1)
        assert (await boss.get("/webhooks"))["failed"] == []
    finally:
        await kefu.stop()


@pytest.mark.parametrize(("masked", "contact"), [(True, "138****5678"), (False, "13812345678")])
async def test_an_overdue_offline_message_is_told_once(
        make_config: Callable[..., Config], receiver: Receiver, tmp_path: Path, masked: bool,
        contact: str) -> None:
    kefu = await Kefu(webhook_config(
        functools.partial(make_config, privacy={"mask_webhooks": masked}), receiver,
        tmp_path / "k.sqlite3")).start()
    try:
        now = time.time()
        await kefu.store.save_ticket(Ticket(
            id="T1", conversation_id="gone", channel="webchat", user_id="v1", lang="zh",
            question="发票开错了", contact="13812345678", created_at=now - 7200,
            due_at=now - 3600))
        await kefu.store.save_ticket(Ticket(
            id="T2", conversation_id="gone", channel="webchat", user_id="v2", lang="zh",
            question="还没到", contact="", created_at=now, due_at=now + 3600))
        await kefu.desk.tick()
        await kefu.desk.tick()
        await wait_for(lambda: len(receiver.events) == 1)
        await asyncio.sleep(0.2)  # time for a second (wrong) one to arrive
    finally:
        await kefu.stop()
    (event,) = receiver.events.values()
    assert (event["type"], event["data"]["ticket"], event["data"]["contact"]) == (
        "ticket.overdue", "T1", contact)  # privacy.mask_webhooks
