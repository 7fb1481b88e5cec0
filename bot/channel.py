"""What kefu needs of a channel adapter: a small Protocol every adapter implements."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from bot.messages import StoredMessage
from bot.store import Conversation


class Channel(Protocol):
    name: str

    def add_routes(self, app: web.Application) -> None:
        """Register the adapter's webhooks or sockets on kefu's app."""

    async def send(self, conversation: Conversation, message: StoredMessage) -> None:
        """Deliver a stored message to the customer."""

    async def send_state(self, conversation: Conversation, position: int | None) -> None:
        """Tell the customer's client the conversation's state (and queue position)."""

    async def typing(self, conversation: Conversation) -> None:
        """Show the customer that an agent is writing, where the platform allows it."""

    async def absent_since(self, user_id: str) -> float | None:
        """When the customer was last connected, if the channel knows they have left
        (a web chat tab closed); None while connected or when the channel cannot tell."""

    async def aclose(self) -> None: ...
