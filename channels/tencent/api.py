"""WeChat's and WeCom's server API over aiohttp: the access_token shared through the store
(`SharedToken`), JSON calls that refresh a refused token once, and retries while the
platform is busy.

aiohttp rather than wechatpy's client: wechatpy's client is blocking (requests), and a
thread per call would still tie up the pool while the platform is slow; aiohttp keeps every
call on the event loop with its own timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.cluster import Leases
from bot.errors import ChannelSendError, WindowRefusal
from bot.http import LazySession
from bot.store import Store
from channels.tencent.settings import TencentApiConfig
from channels.tencent.token import SharedToken

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}  # invalid, not the latest, or expired access_token
BUSY = {-1: "busy (-1)", 45009: "API call limit reached (45009)"}


@dataclass(frozen=True, slots=True)
class Platform:
    """Who is called, and how a token is asked for."""

    name: str  # "WeChat", "WeCom": in log lines and errors
    account: str  # the AppID or CorpID: one token per account
    token_path: str
    token_params: Mapping[str, str]
    refused: Mapping[int, str]  # error codes that mean "not now for this customer", said why
    window_codes: frozenset[int] = frozenset()  # of those, the ones for the window or quota


class TencentApi:
    def __init__(self, config: TencentApiConfig, platform: Platform, store: Store,
                 leases: Leases, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._platform = platform
        self._http = LazySession(config.api_timeout_seconds)
        self._token = SharedToken(f"{platform.name.lower()}:access_token:{platform.account}",
                                  store, leases, clock, config.token_refresh_margin_seconds,
                                  self._fetch_token)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def access_token(self) -> str:
        return await self._token.get()

    async def _fetch_token(self) -> tuple[str, float]:
        p = self._platform
        reply = await self._get_json(f"{self._config.api_base}{p.token_path}",
                                     dict(p.token_params))
        if "access_token" not in reply:
            code = reply.get("errcode")
            raise ChannelSendError(f"cannot get a {p.name} access_token: {code} "
                                   f"{reply.get('errmsg')} (check the id, the secret and the "
                                   "IP allow-list)", retryable=code in BUSY)
        return str(reply["access_token"]), float(reply["expires_in"])

    # calls

    def _unreachable(self, exc: BaseException) -> ChannelSendError:
        return ChannelSendError(f"{self._platform.name} API unreachable: {exc!r}",
                                retryable=True)

    async def _get_json(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            async with self._http.get().get(url, params=params) as response:
                return await self._json(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

    async def call(self, path: str, payload: dict[str, Any] | None,
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        """POST `payload` (GET without one) to the API with the access_token; an expired or
        replaced token is refreshed and the call tried once more."""
        # Chinese must go as UTF-8, not \\u escapes: the platforms show escapes as they are.
        body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        for attempt in (1, 2):
            token = await self.access_token()
            try:
                async with self._http.get().request(
                        "GET" if body is None else "POST", f"{self._config.api_base}{path}",
                        params={**(params or {}), "access_token": token}, data=body,
                        headers={"Content-Type": "application/json"}) as response:
                    reply = await self._json(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self._unreachable(exc) from None
            if reply.get("errcode") in TOKEN_ERRORS and attempt == 1:
                log.info("%s: access_token refused (%s); refreshing", self._platform.name,
                         reply["errcode"])
                await self._token.forget(token)
                continue
            return reply
        return reply

    async def checked(self, path: str, payload: dict[str, Any] | None,
                      params: dict[str, str] | None = None) -> dict[str, Any]:
        """Call, retrying while the platform is busy or unreachable; raise what it refused."""
        name = self._platform.name
        delay = 0.5
        for attempt in range(1, self._config.send_attempts + 1):
            try:
                reply = await self.call(path, payload, params)
            except ChannelSendError as exc:
                if not exc.retryable or attempt == self._config.send_attempts:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
                continue
            code = reply.get("errcode", 0)
            if code == 0:
                return reply
            if code in BUSY and attempt < self._config.send_attempts:
                log.info("%s: %s; trying again in %.1f s", name, BUSY[code], delay)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            reason = self._platform.refused.get(code) or (
                f"{name} is {BUSY[code]}" if code in BUSY else
                f"{name} refused it: {code} {reply.get('errmsg', '')}")
            if code in self._platform.window_codes:
                raise WindowRefusal(reason)
            raise ChannelSendError(reason, retryable=code in BUSY)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _json(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        name = self._platform.name
        try:
            data = await response.json(content_type=None)
        except (json.JSONDecodeError, aiohttp.ContentTypeError, UnicodeDecodeError):
            raise ChannelSendError(f"{name} answered {response.status} without JSON",
                                   retryable=response.status >= 500) from None
        if not isinstance(data, dict):
            raise ChannelSendError(f"{name} answered JSON that is not an object",
                                   retryable=False)
        return data
