"""Helpdesk bridges: another helpdesk's agents answer kefu's customers after a handoff.

This is their registry (`BridgesConfig`): a bridge is one package, `handoff/bridges/<name>/`,
of the same shape as Chatwoot's, and one line here. That package has:

- `settings.py`: a `BridgeSettings` (bot/settings.py) under `handoff.<name>`, read by
  bot/config.py before the rest of kefu (so it imports only bot.settings at import time);
  `handoff.desk: <name>` selects it, and its `build` makes the `DeskBridge` (below) from
  `BridgeServices`, its `forget` queues the deletion of an erased customer's copy;
- an API client for the helpdesk, and the bridge;
- outward, the transcript is the outbox: what kefu's customers, bot and desk say is stored
  first, and the bridge copies each conversation's transcript past a cursor of its own
  (kept in the store's channel state), so a crash or an unreachable helpdesk only delays
  the copy, and posts carry kefu's ids so that a copy interrupted half-way is not doubled;
- inward, the helpdesk's webhooks (verified, then dropped when seen before) and a periodic
  read-back of what its agents did become `PlatformNews` for `Desk.platform_news`, with
  `desk=<name>`: kefu records and delivers their replies (once, by the helpdesk's message
  id), and assignments and resolves move the conversation as kefu's own desk would.

The desk asks a bridge only what `DeskBridge` says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.settings import BridgeSettings, Settings
from handoff.bridges.chatwoot.settings import ChatwootSettings

if TYPE_CHECKING:
    from aiohttp import web

    from bot.channel import PlatformNews
    from bot.cluster import Leases
    from bot.speaker import Speaker
    from bot.store import Conversation, Store
    from handoff.customers import CustomerBook


class BridgesConfig(Settings):
    """The helpdesks kefu bridges to, each under `handoff.<name>` (HandoffConfig is one)."""

    chatwoot: ChatwootSettings = ChatwootSettings()

    def bridges(self) -> dict[str, BridgeSettings]:
        """Every registered helpdesk's settings, by name."""
        found = {name: getattr(self, name) for name in type(self).model_fields}
        return {name: value for name, value in found.items()
                if isinstance(value, BridgeSettings)}


@dataclass(frozen=True)
class BridgeServices:
    """What a bridge may use of kefu."""

    store: Store
    speaker: Speaker
    customers: CustomerBook
    leases: Leases
    news: Callable[[PlatformNews], Any]  # Desk.platform_news
    clock: Callable[[], float]


class DeskBridge(Protocol):
    name: str  # conversations its agents hold have agent ids "<name>:<person>"

    async def on_duty(self, now: float) -> bool:
        """The helpdesk takes handoffs now (its business hours); else an offline message."""

    async def end(self, conversation: Conversation) -> None:
        """A kefu supervisor ended a chat the helpdesk's agent holds: resolve it there."""

    def add_routes(self, app: web.Application) -> None:
        """The helpdesk's webhook endpoint."""

    async def run(self) -> None:
        """Copy transcripts out, read the helpdesk back and delete what erasure queued,
        until cancelled."""
