"""Helpdesk bridges: another helpdesk's agents answer kefu's customers after a handoff.

A bridge is one package, `handoff/bridges/<name>/`, of the same shape as Chatwoot's:

- `settings.py`: its settings model under `handoff.<name>` (read by bot/config.py before
  the rest of kefu, so it imports only bot.settings), and `handoff.desk: <name>` selects it;
- an API client for the helpdesk, and a `DeskBridge` (below) built in bot/app.py's `bridge_for`;
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

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from bot.store import Conversation


class DeskBridge(Protocol):
    name: str  # conversations its agents hold have agent ids "<name>:<person>"

    async def on_duty(self, now: float) -> bool:
        """The helpdesk takes handoffs now (its business hours); else an offline message."""

    async def end(self, conversation: Conversation) -> None:
        """A kefu supervisor ended a chat the helpdesk's agent holds: resolve it there."""

    def add_routes(self, app: web.Application) -> None:
        """The helpdesk's webhook endpoint."""

    async def run(self) -> None:
        """Copy transcripts out and read the helpdesk back, until cancelled."""
