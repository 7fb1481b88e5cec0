"""The QQ bot platform's server API: the app access token (shared through the store, as for
WeChat) and passive replies."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.cluster import Leases
from bot.errors import ChannelSendError
from bot.http import LazySession
from bot.store import Store
from channels.qq.settings import QQConfig
from channels.tencent.token import SharedToken

log = logging.getLogger(__name__)

RATE_LIMITED = 22009  # msg limit exceed


class QQApi:
    def __init__(self, config: QQConfig, store: Store, leases: Leases,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._http = LazySession(config.api_timeout_seconds)
        self._token = SharedToken(f"qq:access_token:{config.app_id}", store, leases, clock,
                                  config.token_refresh_margin_seconds, self._fetch_token)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _fetch_token(self) -> tuple[str, float]:
        status, reply = await self._post(self._config.token_url, {
            "appId": self._config.app_id, "clientSecret": self._config.secret}, {})
        if status != 200 or "access_token" not in reply:
            raise ChannelSendError(f"cannot get a QQ access token: {status} "
                                   f"{reply.get('code')} {reply.get('message')} (check "
                                   "app_id, secret and the IP allow-list)",
                                   retryable=status >= 500)
        return str(reply["access_token"]), float(reply["expires_in"])

    async def send(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a message; a refused token is refreshed once, busy or unreachable retried."""
        delay = 0.5
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = await self._token.get()
            try:
                status, reply = await self._post(f"{self._config.api_base}{path}", payload,
                                                 {"Authorization": f"QQBot {token}"})
            except ChannelSendError:
                if attempt >= self._config.send_attempts:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
                continue
            if status == 401 and not refreshed:
                await self._token.forget(token)
                refreshed = True
                continue
            if status < 300:
                return reply
            busy = status >= 500 or reply.get("code") == RATE_LIMITED
            if busy and attempt < self._config.send_attempts:
                await asyncio.sleep(delay)
                delay *= 2
                continue
            raise ChannelSendError(f"QQ refused it: {status} {reply.get('code')} "
                                   f"{reply.get('message', '')}", retryable=busy)

    async def _post(self, url: str, payload: dict[str, Any], headers: dict[str, str]
                    ) -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            async with self._http.get().post(url, data=body, headers={
                    "Content-Type": "application/json", **headers}) as response:
                try:
                    data = await response.json(content_type=None)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    data = {}
                return response.status, data if isinstance(data, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChannelSendError(f"QQ API unreachable: {exc!r}", retryable=True) from None
