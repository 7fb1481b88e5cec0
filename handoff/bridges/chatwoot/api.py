"""The calls kefu makes to Chatwoot's Application API (`/api/v1/accounts/<id>/...`).

Written by hand on aiohttp: Chatwoot publishes no Python client, and the few community ones
are unmaintained and cover other endpoints. The access token goes in the `api_access_token`
header only, so it is never part of a URL, an error or a log line.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.http import LazySession
from handoff.bridges.chatwoot.settings import ChatwootSettings


class ChatwootError(Exception):
    """A call that failed: `status` is Chatwoot's HTTP status, 0 when it was not reached."""

    def __init__(self, what: str, status: int, detail: str) -> None:
        super().__init__(f"{what}: " + (f"HTTP {status} {detail}" if status else detail))
        self.status = status


class ChatwootApi:
    def __init__(self, settings: ChatwootSettings) -> None:
        self._settings = settings
        self._base = (f"{settings.base_url.rstrip('/')}/api/v1/accounts/"
                      f"{settings.account_id}")
        self._http = LazySession(settings.timeout_seconds)

    async def _call(self, method: str, path: str, what: str, *,
                    body: dict[str, Any] | None = None,
                    query: dict[str, str] | None = None) -> Any:
        headers = {"api_access_token": self._settings.access_token,
                   "User-Agent": "kefu-chatwoot-bridge"}
        try:
            async with self._http.get().request(method, self._base + path, json=body,
                                                params=query, headers=headers) as response:
                if response.status >= 300:
                    detail = (await response.text())[:200]
                    raise ChatwootError(what, response.status, detail)
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChatwootError(what, 0, f"unreachable: {type(exc).__name__} {exc}"[:300]
                                ) from None

    async def aclose(self) -> None:
        await self._http.aclose()

    # contacts

    async def contact_by_identifier(self, identifier: str) -> dict[str, Any] | None:
        found = await self._call("GET", "/contacts/search", "contacts/search",
                                 query={"q": identifier})
        return next((c for c in found.get("payload", []) if c.get("identifier") == identifier),
                    None)

    async def create_contact(self, contact: dict[str, Any]) -> dict[str, Any] | None:
        """The new contact; None when its identifier is taken (made meanwhile)."""
        try:
            made = await self._call("POST", "/contacts", "contacts", body=contact)
        except ChatwootError as exc:
            if exc.status == 422:
                return None
            raise
        return dict(made["payload"]["contact"])

    async def add_contact_inbox(self, contact_id: int, source_id: str) -> None:
        """The contact writes through kefu's inbox as `source_id`; kept if already there."""
        try:
            await self._call("POST", f"/contacts/{contact_id}/contact_inboxes",
                             "contact_inboxes", body={"inbox_id": self._settings.inbox_id,
                                                      "source_id": source_id})
        except ChatwootError as exc:
            if exc.status != 422:  # 422: that source id exists already
                raise

    async def conversations_of(self, contact_id: int) -> list[dict[str, Any]]:
        found = await self._call("GET", f"/contacts/{contact_id}/conversations",
                                 "contacts/conversations")
        return list(found.get("payload", []))

    # conversations

    async def create_conversation(self, source_id: str, contact_id: int,
                                  custom_attributes: dict[str, Any],
                                  additional_attributes: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("POST", "/conversations", "conversations", body={
            "source_id": source_id, "inbox_id": self._settings.inbox_id,
            "contact_id": contact_id, "status": "open",
            "custom_attributes": custom_attributes,
            "additional_attributes": additional_attributes}))

    async def conversation(self, conversation_id: int) -> dict[str, Any]:
        return dict(await self._call("GET", f"/conversations/{conversation_id}",
                                     "conversation"))

    async def messages_after(self, conversation_id: int, after: int) -> list[dict[str, Any]]:
        found = await self._call("GET", f"/conversations/{conversation_id}/messages",
                                 "messages", query={"after": str(after)})
        return list(found.get("payload", []))

    async def post_message(self, conversation_id: int, content: str, *, incoming: bool,
                           private: bool, source_id: str) -> dict[str, Any]:
        return dict(await self._call(
            "POST", f"/conversations/{conversation_id}/messages", "post message", body={
                "content": content, "message_type": "incoming" if incoming else "outgoing",
                "private": private, "source_id": source_id}))

    async def resolve(self, conversation_id: int) -> None:
        await self._call("POST", f"/conversations/{conversation_id}/toggle_status",
                         "toggle_status", body={"status": "resolved"})

    async def inbox(self) -> dict[str, Any]:
        return dict(await self._call("GET", f"/inboxes/{self._settings.inbox_id}", "inbox"))
