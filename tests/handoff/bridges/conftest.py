"""A kefu whose desk is a Chatwoot API inbox (the stand-in), and its customers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.config import Config, StoreConfig
from bot.store import Conversation
from handoff.bridges.chatwoot.bridge import ROUTE
from tests.handoff.bridges.chatwoot_standin import ChatwootStandIn
from tests.harness import Kefu, wait_for
from tests.redis_support import REDIS_URL, forget, require_redis, unique_prefix

# With Redis, the stopped kefu's `chatwoot` lease runs out before the new one copies.
AFTER_RESTART = StoreConfig().lease_seconds + 5


@dataclass
class World:
    chatwoot: ChatwootStandIn
    kefu: Kefu
    make: Callable[..., Config]
    sections: dict[str, dict[str, Any]]  # more of kefu's settings, by section
    clock: Callable[[], float] = time.time  # kefu's, from the next restart

    def config(self, **chatwoot: Any) -> Config:
        """kefu's settings with the stand-in as its desk; `chatwoot` overrides some."""
        settings = {"base_url": self.chatwoot.url, "account_id": self.chatwoot.account_id,
                    "inbox_id": self.chatwoot.inbox_id,
                    "access_token": self.chatwoot.access_token,
                    "webhook_secret": self.chatwoot.webhook_secret, "sync_seconds": 0.1,
                    "catch_up_seconds": 60, "first_retry_seconds": 0.1,
                    "max_retry_seconds": 0.3, **chatwoot}
        desk = {"tick_seconds": 0.1, **self.sections.get("desk", {})}
        return self.make(**{**self.sections, "desk": desk},
                         handoff={"desk": "chatwoot", "chatwoot": settings})

    async def restart(self, **chatwoot: Any) -> Kefu:
        """kefu stops and starts again on the same store (and a new port)."""
        await self.kefu.stop()
        self.kefu = await Kefu(self.config(**chatwoot), self.clock).start()
        self.point_webhook()
        return self.kefu

    def point_webhook(self, path: str = ROUTE) -> None:
        assert self.kefu.client is not None
        self.chatwoot.webhook_url = str(self.kefu.client.make_url(path))

    async def handed_off(self, *texts: str) -> tuple[Any, Conversation]:
        """A web customer says `texts`, then asks for a person; their conversation once
        Chatwoot has it."""
        visitor = await self.kefu.visitor()
        for text in (*texts, "转人工"):
            await visitor.say(text)
        conversation = await self.kefu.store.latest_conversation("webchat", visitor.id)
        assert conversation is not None
        await wait_for(lambda: any(
            c.custom_attributes.get("kefu_conversation_id") == conversation.id
            for c in self.chatwoot.conversations.values()))
        return visitor, conversation


@pytest.fixture(params=["sqlite", "redis"])
async def world(request: pytest.FixtureRequest, make_config: Callable[..., Config]
                ) -> AsyncIterator[World]:
    """The same tests on each store: the bridge's cursors live in it."""
    sections: dict[str, dict[str, Any]] = {}
    prefix = unique_prefix()
    if request.param == "redis":
        await require_redis()
        sections["store"] = {"type": "redis", "url": REDIS_URL, "prefix": prefix}
    chatwoot = await ChatwootStandIn().start()
    made = World(chatwoot, Kefu(make_config()), make_config, sections)
    made.kefu = await Kefu(made.config()).start()
    made.point_webhook()
    yield made
    await made.kefu.stop()
    await chatwoot.stop()
    if request.param == "redis":
        await forget(prefix)
