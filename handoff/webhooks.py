"""Outbound webhooks: what happens at the desk, as signed JSON events for other systems.

Publishing only writes the event to the store's outbox (one delivery per endpoint), in the
same write as the change it announces (`prepare`, then the store's save with
`deliveries`), so a crash keeps both or neither, and a slow or dead endpoint never slows a
conversation. A background loop, in one process at a
time (a lease), sends what is due: at least once, retried with doubling back-off, given up
after `max_attempts` and then shown to supervisors. A delivery interrupted by a crash is
sent again after a restart; receivers drop repeats by the event id.

Each request carries `X-Kefu-Event` (the type), `X-Kefu-Event-Id`, `X-Kefu-Timestamp` and
`X-Kefu-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp

from bot.cluster import Leases
from bot.config import WebhookEndpoint, WebhooksConfig
from bot.http import LazySession
from bot.masking import mask_json
from bot.store import Conversation, DeliveryStatus, Store, WebhookDelivery

log = logging.getLogger(__name__)

LEADER = "webhooks"


def signature(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class Webhooks:
    def __init__(self, config: WebhooksConfig, store: Store, leases: Leases,
                 clock: Callable[[], float] = time.time, *, masked: bool = True) -> None:
        self._config = config
        self._masked = masked  # privacy.mask_webhooks
        self._store = store
        self._leases = leases
        self._clock = clock
        self._endpoints = {e.name: e for e in config.endpoints}
        self._wake = asyncio.Event()
        self._http = LazySession(config.timeout_seconds)

    def _wanting(self, type_: str) -> list[WebhookEndpoint]:
        return [e for e in self._endpoints.values() if "*" in e.events or type_ in e.events]

    def prepare(self, type_: str, data: dict[str, Any]) -> tuple[WebhookDelivery, ...]:
        """The event's deliveries, one per endpoint that wants it, for the store to queue
        in the same write as the change they announce (then call `queued`)."""
        endpoints = self._wanting(type_)
        if not endpoints:
            return ()
        now, event_id = self._clock(), uuid.uuid4().hex
        if self._masked:
            data = mask_json(data)
        body = json.dumps({"id": event_id, "type": type_, "created_at": now, "data": data},
                          ensure_ascii=False, sort_keys=True)
        return tuple(WebhookDelivery(
            id=f"{event_id}-{endpoint.name}", event_id=event_id, endpoint=endpoint.name,
            type=type_, body=body, created_at=now, next_at=now) for endpoint in endpoints)

    def queued(self, deliveries: tuple[WebhookDelivery, ...]) -> None:
        """Deliveries were stored: the sender looks at once."""
        if deliveries:
            self._wake.set()

    def about(self, conversation: Conversation, **more: Any) -> dict[str, Any]:
        """An event's data about a conversation, with a link to its transcript."""
        data = {"conversation_id": conversation.id, "channel": conversation.channel,
                "customer": conversation.user_id, "source": conversation.source, **more}
        if self._config.public_url:
            data["transcript_url"] = (f"{self._config.public_url.rstrip('/')}/agent/api/"
                                      f"conversations/{conversation.id}/transcript")
        return data

    async def retry(self, delivery_id: str) -> WebhookDelivery | None:
        """A supervisor sends a failed delivery again, from the first attempt."""
        found = [d for d in await self._store.deliveries(DeliveryStatus.FAILED, limit=1000)
                 if d.id == delivery_id]
        if not found:
            return None
        again = replace(found[0], status=DeliveryStatus.PENDING, attempts=0,
                        next_at=self._clock(), last_error="")
        await self._store.save_delivery(again)
        self._wake.set()
        return again

    # sending

    async def run(self) -> None:
        """Send what is due, in whichever process leads, until cancelled."""
        if not self._endpoints:
            return
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._config.tick_seconds):
                        await self._wake.wait()
                self._wake.clear()
                if await self._leases.try_lead(LEADER):
                    await self.send_due()
        finally:
            await self._http.aclose()

    async def send_due(self) -> None:
        while True:
            due = await self._store.due_deliveries(self._clock(), self._config.batch)
            if not due:
                return
            await asyncio.gather(*(self._attempt(d) for d in due))
            if len(due) < self._config.batch:
                return

    async def _attempt(self, delivery: WebhookDelivery) -> None:
        endpoint = self._endpoints.get(delivery.endpoint)
        if endpoint is None:  # removed from the config since
            await self._store.save_delivery(replace(
                delivery, status=DeliveryStatus.FAILED,
                last_error=f"no endpoint {delivery.endpoint!r} in the config any more"))
            return
        error = await self._post(endpoint, delivery)
        now = self._clock()
        attempts = delivery.attempts + 1
        if error is None:
            await self._store.save_delivery(replace(
                delivery, attempts=attempts, status=DeliveryStatus.DELIVERED,
                delivered_at=now, last_error=""))
            return
        if attempts >= self._config.max_attempts:
            log.error("webhook %s to %s given up after %d attempts: %s", delivery.type,
                      endpoint.name, attempts, error)
            await self._store.save_delivery(replace(
                delivery, attempts=attempts, status=DeliveryStatus.FAILED, last_error=error))
            return
        wait = min(self._config.first_retry_seconds * 2 ** (attempts - 1),
                   self._config.max_retry_seconds)
        log.warning("webhook %s to %s failed (%s); attempt %d in %.0f s", delivery.type,
                    endpoint.name, error, attempts + 1, wait)
        await self._store.save_delivery(replace(
            delivery, attempts=attempts, next_at=now + wait, last_error=error))

    async def _post(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> str | None:
        """None when the endpoint took it (2xx); else what went wrong."""
        timestamp = str(int(self._clock()))
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "kefu-webhooks", "X-Kefu-Event": delivery.type,
                   "X-Kefu-Event-Id": delivery.event_id, "X-Kefu-Timestamp": timestamp,
                   "X-Kefu-Signature": signature(endpoint.secret, timestamp, delivery.body)}
        try:
            async with self._http.get().post(endpoint.url, data=delivery.body.encode(),
                                          headers=headers) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"unreachable: {exc!r}"[:300]
