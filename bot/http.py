"""One outgoing HTTP session per client, made on first use and closed once.

aiohttp sessions must be made inside the running event loop, so clients of the platforms'
APIs, of OneBot clients and of webhook endpoints each hold one of these instead.
"""

from __future__ import annotations

import aiohttp


class LazySession:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
