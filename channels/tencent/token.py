"""An access token shared by every kefu process through the store.

Tencent's platforms (WeChat, WeCom, QQ) allow a limited number of token requests a day and
a new token ends the previous one a few minutes later, so processes refreshing on their own
would keep invalidating each other. One process refreshes at a time (a lease), and none
when another one just did.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.cluster import Leases
from bot.store import Store

log = logging.getLogger(__name__)

# Asks the platform for a new token: (token, seconds it lives).
Fetch = Callable[[], Awaitable[tuple[str, float]]]


class SharedToken:
    def __init__(self, name: str, store: Store, leases: Leases, clock: Callable[[], float],
                 refresh_margin_seconds: float, fetch: Fetch) -> None:
        self._name = name  # the store key, e.g. "wecom:access_token:<corp id>"
        self._store = store
        self._leases = leases
        self._clock = clock
        self._margin = refresh_margin_seconds
        self._fetch = fetch

    async def get(self) -> str:
        """A token valid for at least the refresh margin."""
        token = await self._stored()
        if token:
            return token
        async with self._leases.hold(f"{self._name}:refresh"):
            token = await self._stored()
            if token:
                return token
            token, lifetime = await self._fetch()
            now = self._clock()
            await self._store.save_state(self._name, {
                "token": token, "expires_at": now + lifetime, "fetched_at": now})
            log.info("%s: new token, valid for %.0f s", self._name, lifetime)
            return token

    async def forget(self, token: str) -> None:
        """The platform refused `token`: the next `get` fetches a new one, unless another
        process already did."""
        state = await self._store.load_state(self._name)
        if state and state.get("token") == token:
            await self._store.save_state(self._name, {**state, "expires_at": 0})

    async def _stored(self) -> str | None:
        state = await self._store.load_state(self._name)
        if state and state.get("expires_at", 0) - self._margin > self._clock():
            return str(state["token"])
        return None
