"""`create_app(config)`: the one place where kefu's parts are built and wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.config import Config
from bot.errors import ConfigError, KnowledgeBaseError
from bot.router import Router
from bot.store import Store
from bot.store.sqlite import SqliteStore
from channels.webchat import WebChatChannel
from knowledge_base.base import KnowledgeBase, LiveKnowledgeBase

log = logging.getLogger(__name__)

STORE = web.AppKey("store", Store)
ROUTER = web.AppKey("router", Router)
KNOWLEDGE_BASE = web.AppKey("knowledge_base", LiveKnowledgeBase)
CHANNELS = web.AppKey("channels", dict)
SHUTDOWN_GRACE_SECONDS = 10.0


async def open_store(config: Config) -> Store:
    return await SqliteStore.open(config.store.path, synchronous=config.store.synchronous)


async def create_app(config: Config) -> web.Application:
    """Build the whole bot; raises ConfigError or KnowledgeBaseError with clear messages."""
    try:
        knowledge_base = await asyncio.to_thread(KnowledgeBase.load, config.knowledge_base.path)
    except KnowledgeBaseError as exc:
        raise KnowledgeBaseError([f"cannot start: {p}" for p in exc.problems]) from None
    live_kb = LiveKnowledgeBase(config.knowledge_base.path, knowledge_base)
    store = await open_store(config)
    channels: dict[str, WebChatChannel] = {}
    router = Router(config, store, live_kb, channels)
    if config.channels.webchat.enabled:
        channels["webchat"] = WebChatChannel(config.channels.webchat, store, router.submit)
    if not channels:
        await store.close()
        raise ConfigError("channels: every channel is disabled; enable at least one")

    app = web.Application()
    app[STORE] = store
    app[ROUTER] = router
    app[KNOWLEDGE_BASE] = live_kb
    app[CHANNELS] = channels
    for channel in channels.values():
        channel.add_routes(app)
    app.router.add_get("/healthz", _health)

    async def watch_knowledge_base(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(live_kb.watch(config.knowledge_base.reload_interval_seconds))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def shut_down(app: web.Application) -> None:
        for channel in channels.values():
            await channel.aclose()
        try:
            await asyncio.wait_for(router.idle(), SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            log.warning("shutdown: some conversations were still being handled")
        await store.close()

    app.cleanup_ctx.append(watch_knowledge_base)
    app.on_shutdown.append(shut_down)
    log.info("kefu ready: %d FAQ entries, channels: %s", len(knowledge_base.entries),
             ", ".join(channels))
    return app


async def _health(request: web.Request) -> web.Response:
    live_kb = request.app[KNOWLEDGE_BASE]
    return web.json_response({
        "status": "ok",
        "faq_entries": len(live_kb.current.entries),
        "knowledge_base_problems": live_kb.last_problems,
    })
