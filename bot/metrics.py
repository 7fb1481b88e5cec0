"""Prometheus metrics at /metrics: what happens (counted as it happens, per process) and
how things stand (read from the shared store when scraped, the same in every process).

Each app has its own registry, so several kefu apps in one process (tests, benchmarks)
never mix their figures. Who may scrape is set in `metrics` in the config.
"""

from __future__ import annotations

import bisect
import functools
import gc
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import HistogramMetricFamily, Metric

from bot.config import MetricsConfig
from bot.messages import ConversationState
from bot.store import Presence, Store, TicketStatus
from bot.wire import address_in, networks_of, same_secret

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class _GcPauses:
    """The garbage collector's pauses (each stops the whole process, every customer on it),
    by generation, shown in every app's registry: they belong to the process, not to an app.

    The collector's callback only counts, in plain lists: a prometheus metric takes a lock,
    and a collection can start while a scrape holds it."""

    def __init__(self) -> None:
        generations = range(3)
        self._buckets = {g: [0] * (len(PAUSE_BUCKETS) + 1) for g in generations}
        self._sums = dict.fromkeys(generations, 0.0)
        self._started = 0.0
        gc.callbacks.append(self._time)

    def _time(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self._buckets[generation][bisect.bisect_left(PAUSE_BUCKETS, pause)] += 1
        self._sums[generation] += pause

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            "kefu_gc_pause_seconds", "Pauses of Python's garbage collector (the whole "
            "process waits), by generation; server.gc_thresholds sets how often",
            labels=["generation"])
        for generation, counts in self._buckets.items():
            cumulative = list(itertools.accumulate(counts))
            edges = [str(edge) for edge in PAUSE_BUCKETS] + ["+Inf"]
            family.add_metric([str(generation)], list(zip(edges, cumulative, strict=True)),
                              self._sums[generation])
        yield family


@functools.cache
def gc_pauses() -> _GcPauses:
    """The process's one recorder, started with its first app (not at import)."""
    return _GcPauses()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.greeting_latency = Histogram(
            "kefu_greeting_latency_seconds", "From a new customer's first event to the "
            "greeting handed to the channel", ["channel"], buckets=LATENCY_BUCKETS, registry=r)
        self.answer_latency = Histogram(
            "kefu_answer_latency_seconds", "From a customer's message to the bot's reply "
            "handed to the channel", ["channel"], buckets=LATENCY_BUCKETS, registry=r)
        self.messages = Counter(
            "kefu_messages", "Messages received from customers (in) and delivered to them "
            "(out)", ["channel", "direction"], registry=r)
        self.undelivered = Counter(
            "kefu_undelivered_messages", "Messages a channel refused for good", ["channel"],
            registry=r)
        self.handoffs = Counter(
            "kefu_handoffs", "Conversations passed to people (queued, or an offline message "
            "offered)", ["reason"], registry=r)
        self.sla_breaches = Counter(
            "kefu_sla_breaches", "Service rules broken: greeting (later than the greeting "
            "rule), agent_reply (no agent reply within the reply rule)", ["rule"], registry=r)
        self.abandoned = Counter(
            "kefu_queue_abandoned", "Customers who left the queue before an agent came",
            registry=r)
        self.queue_length = Gauge("kefu_queue_length", "Conversations waiting for an agent",
                                  registry=r)
        self.oldest_wait = Gauge("kefu_queue_oldest_wait_seconds",
                                 "How long the first in the queue has waited", registry=r)
        self.chats = Gauge("kefu_agent_chats", "Conversations held by agents", registry=r)
        self.agents_online = Gauge("kefu_agents", "Agent accounts by presence", ["presence"],
                                   registry=r)
        self.tickets_open = Gauge("kefu_offline_messages_open",
                                  "Offline messages not yet answered", ["overdue"], registry=r)
        for rule in ("greeting", "agent_reply"):
            self.sla_breaches.labels(rule)  # present at 0 before the first breach
        r.register(gc_pauses())

    async def refresh(self, store: Store, now: float) -> None:
        """How things stand, from the store."""
        queued = await store.conversations_in_state(ConversationState.QUEUED)
        self.queue_length.set(len(queued))
        oldest = min((c.queued_at for c in queued if c.queued_at is not None), default=None)
        self.oldest_wait.set(0.0 if oldest is None else max(0.0, now - oldest))
        self.chats.set(len(await store.conversations_in_state(ConversationState.AGENT)))
        agents = await store.agents()
        for presence in Presence:
            self.agents_online.labels(presence.value).set(
                sum(1 for a in agents if a.presence is presence))
        tickets = await store.tickets(TicketStatus.OPEN)
        overdue = sum(1 for t in tickets if t.due_at < now)
        self.tickets_open.labels("true").set(overdue)
        self.tickets_open.labels("false").set(len(tickets) - overdue)


def metrics_handler(metrics: Metrics, store: Store, config: MetricsConfig,
                    clock: Callable[[], float] = time.time
                    ) -> Callable[[web.Request], Awaitable[web.Response]]:
    networks = networks_of(config.allow)

    async def handle(request: web.Request) -> web.Response:
        if config.token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not same_secret(given, config.token):
                raise web.HTTPUnauthorized(text="metrics need the bearer token\n")
        elif not address_in(request.remote, networks):
            raise web.HTTPForbidden(text="metrics are not served to this address "
                                         "(metrics.allow)\n")
        await metrics.refresh(store, clock())
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle
