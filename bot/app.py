"""`create_app(config)`: the one place where kefu's parts are built and wired together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from redis.exceptions import RedisError

from bot.answering import answering_for
from bot.channel import Channel, ChannelServices, platform_name
from bot.cluster import Fanout, Leases, LocalFanout, LocalLeases, RedisFanout, RedisLeases
from bot.config import Config
from bot.errors import ConfigError, KnowledgeBaseError
from bot.lanes import Lanes
from bot.metrics import Metrics, metrics_handler
from bot.recovery import Recovery
from bot.router import Router
from bot.speaker import Speaker
from bot.stopping import bounded, bounded_context
from bot.store import Store
from bot.store.redis import RedisStore
from bot.store.sqlite import SqliteStore
from bot.understanding import reader_for
from handoff.auth import Sessions
from handoff.board import Board
from handoff.bridges import BridgeServices, DeskBridge
from handoff.cases import CaseBook
from handoff.console import Console
from handoff.customers import CustomerBook
from handoff.desk import Desk
from handoff.privacy import Privacy
from handoff.retention import Retention
from handoff.webhooks import Webhooks
from knowledge_base.live import LiveKnowledgeBase
from knowledge_base.review import load_regressions, regressions
from knowledge_base.templates import AnswerTemplates

log = logging.getLogger(__name__)

STORE = web.AppKey("store", Store)
ROUTER = web.AppKey("router", Router)
DESK = web.AppKey("desk", Desk)
KNOWLEDGE_BASE = web.AppKey("knowledge_base", LiveKnowledgeBase)
CHANNELS = web.AppKey("channels", dict)
SHUTDOWN_GRACE_SECONDS = 10.0
RECANCEL_SECONDS = 1.0  # a background loop still running this long after a cancel gets another


async def open_store(config: Config) -> Store:
    s = config.store
    if s.type == "redis":
        try:
            return await RedisStore.open(s.url, prefix=s.prefix, dedupe_seconds=s.dedupe_seconds,
                                         sentinels=s.sentinels, sentinel_master=s.sentinel_master,
                                         cluster=s.cluster, max_connections=s.max_connections,
                                         pool_timeout_seconds=s.pool_timeout_seconds)
        except RedisError as exc:
            raise ConfigError(f"store.url: cannot reach Redis at {_without_password(s.url)}: "
                              f"{str(exc).replace(s.url, _without_password(s.url))}") from None
    return await SqliteStore.open(s.path, synchronous=s.synchronous)


def _without_password(url: str) -> str:
    """redis://user:secret@host/0 as redis://user:***@host/0, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{parts.netloc.rpartition('@')[2]}"))


def bridge_for(config: Config, store: Store, speaker: Speaker, customers: CustomerBook,
               leases: Leases, desk: Desk, clock: Callable[[], float]) -> DeskBridge | None:
    """The helpdesk whose agents answer after a handoff (`handoff.desk`); None for kefu's."""
    settings = config.handoff.bridge()
    if settings is None:
        return None
    return settings.build(BridgeServices(store, speaker, customers, leases,
                                         desk.platform_news, clock))


def cluster_for(store: Store, config: Config) -> tuple[Leases, Fanout]:
    """Redis shares leases and news between processes; one process needs neither."""
    if isinstance(store, RedisStore):
        return (RedisLeases(store.client, store.prefix, config.store.lease_timing()),
                RedisFanout(store.client, store.prefix, config.store.catch_up_seconds))
    return LocalLeases(), LocalFanout()


async def create_app(config: Config, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the whole bot; raises ConfigError or KnowledgeBaseError with clear messages."""
    reader = reader_for(config)
    try:
        knowledge_base = await asyncio.to_thread(reader.load, config.knowledge_base.path,
                                                 config.knowledge_base.vocabulary)
    except KnowledgeBaseError as exc:
        raise KnowledgeBaseError([f"cannot start: {p}" for p in exc.problems]) from None
    await asyncio.to_thread(reader.warm)
    # Failing regressions do not stop start-up (customers still need greeting): they are
    # logged and shown at /healthz until an edit fixes them.
    lang = config.business.default_language
    try:
        problems = [str(f) for f in regressions(
            knowledge_base, load_regressions(config.knowledge_base.regressions), reader, lang)]
    except KnowledgeBaseError as exc:
        problems = exc.problems
    for problem in problems:
        log.error("knowledge base regression: %s", problem)
    live_kb = LiveKnowledgeBase(config.knowledge_base.path, knowledge_base,
                                vocabulary=config.knowledge_base.vocabulary,
                                regressions=config.knowledge_base.regressions, reader=reader,
                                lang=lang, problems=problems)
    store = await open_store(config)
    leases, fanout = cluster_for(store, config)
    channels: dict[str, Channel] = {}
    lanes = Lanes(leases)
    metrics = Metrics()
    speaker = Speaker(store, channels, clock, fanout, metrics)
    webhooks = Webhooks(config.webhooks, store, leases, clock,
                        masked=config.privacy.mask_webhooks)
    customers = CustomerBook(config.crm, store, clock,
                             names=functools.partial(platform_name, channels))
    customers.listen(speaker)
    cases = CaseBook(config.crm, store, customers, webhooks, clock)
    desk = Desk(config, store, lanes, speaker, leases, fanout, metrics, webhooks, cases, clock)
    desk.bridge = bridge_for(config, store, speaker, customers, leases, desk, clock)
    router = Router(config, store, live_kb, lanes, speaker, desk, metrics, webhooks, clock)
    recovery = Recovery(store, router, speaker, leases,
                        config.conversation.recovery_after_seconds, clock,
                        config.conversation.recovery_at_once)
    channel_work: list[Callable[[], Coroutine[Any, Any, None]]] = []
    services = ChannelServices(config, store, router.submit, leases, fanout, desk, speaker,
                               clock, channel_work.append)
    for name, settings in config.channels.enabled().items():
        channels[name] = settings.build(services)
    if not channels:
        await store.close()
        raise ConfigError("channels: every channel is disabled; enable at least one")
    router.answering = await answering_for(config, router.reader, AnswerTemplates(
        config.knowledge_base.answer_templates), router.greeter)
    console = Console(config, store, desk, Board(store, config.desk, clock, customers, channels),
                      Sessions(store, config.desk, clock), speaker, fanout, webhooks, customers,
                      cases, clock, Privacy(config.privacy, store, customers, webhooks, clock,
                                            config.handoff.bridge()))

    app = web.Application()

    async def store_lifetime(app: web.Application) -> AsyncIterator[None]:
        yield  # first in, last out: everything else has stopped before the store closes
        await store.close()

    async def fanout_lifetime(app: web.Application) -> AsyncIterator[None]:
        await fanout.start()
        yield
        await fanout.aclose()

    async def answering_lifetime(app: web.Application) -> AsyncIterator[None]:
        yield  # after the lanes are idle and the background loops stopped
        await router.answering.aclose()

    app.cleanup_ctx.append(store_lifetime)
    app.cleanup_ctx.append(fanout_lifetime)
    app.cleanup_ctx.append(answering_lifetime)
    app[STORE] = store
    app[ROUTER] = router
    app[DESK] = desk
    app[KNOWLEDGE_BASE] = live_kb
    app[CHANNELS] = channels
    for channel in channels.values():
        channel.add_routes(app)
    if desk.bridge is not None:
        desk.bridge.add_routes(app)
    app.add_subapp("/agent", console.app())
    app.router.add_get("/healthz", _health)
    if config.metrics.enabled:
        app.router.add_get("/metrics", metrics_handler(metrics, store, config.metrics, clock))

    def background(work: Callable[[], Coroutine[Any, Any, None]], name: str | None = None
                   ) -> Callable[[web.Application], AsyncIterator[None]]:
        what = name or getattr(work, "__qualname__", repr(work))

        async def run(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(work(), name=what)
            yield
            # Cancelled again until it ends: on Python 3.11 a cancel that arrives as an
            # asyncio.timeout fires (redis-py reads with one) is taken for the timeout and
            # lost, and a loop that goes on to sleep would hold up shutdown for ever.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=RECANCEL_SECONDS)
            with contextlib.suppress(asyncio.CancelledError):
                await task

        run.__qualname__ = f"background loop {what}"  # named in a stop that overruns
        return run

    stop_seconds = config.server.stop_timeout_seconds

    async def shut_down(app: web.Application) -> None:
        await bounded("the console", console.aclose(), stop_seconds)
        for name, channel in channels.items():
            await bounded(f"channel {name}", channel.aclose(), stop_seconds)
        try:  # the lanes go on after the grace, and end as the channels refuse to send
            await asyncio.wait_for(router.idle(), SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            log.warning("shutdown: some conversations were still being handled")

    app.cleanup_ctx.append(background(
        lambda: live_kb.watch(config.knowledge_base.reload_interval_seconds),
        "LiveKnowledgeBase.watch"))
    app.cleanup_ctx.append(background(desk.run))
    app.cleanup_ctx.append(background(webhooks.run))
    app.cleanup_ctx.append(background(customers.run))
    app.cleanup_ctx.append(background(lambda: cases.run(leases), "CaseBook.run"))
    app.cleanup_ctx.append(background(recovery.run))
    app.cleanup_ctx.append(background(Retention(config, store, leases, clock).run))
    if desk.bridge is not None:
        app.cleanup_ctx.append(background(desk.bridge.run))
    for work in channel_work:
        app.cleanup_ctx.append(background(work))
    app.on_shutdown.append(shut_down)
    # Every clean-up (a channel's stop, a background loop's, the store's) in bounded time.
    for i, context in enumerate(app.cleanup_ctx):
        app.cleanup_ctx[i] = bounded_context(context, stop_seconds)
    log.info("kefu ready: %d FAQ entries, channels: %s", len(knowledge_base.entries),
             ", ".join(channels))
    return app


async def _health(request: web.Request) -> web.Response:
    """`ok`, or `degraded` while the knowledge base's last edit is refused (or a regression
    fails). Still HTTP 200: the bot answers from the last good knowledge base, and a load
    balancer that took every process out for a staff member's typo would stop the chat."""
    live_kb = request.app[KNOWLEDGE_BASE]
    return web.json_response({
        "status": "degraded" if live_kb.last_problems else "ok",
        "faq_entries": len(live_kb.current.entries),
        "knowledge_base_problems": live_kb.last_problems,
    }, dumps=_readable_json)


def _readable_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
