"""WeChat's server API over aiohttp: access_token, customer-service messages, typing.

aiohttp rather than wechatpy's client: wechatpy's client is blocking (requests), and a
thread per call would still tie up the pool while WeChat is slow; aiohttp keeps every call
on the event loop with its own timeout.

The access_token is shared by every kefu process through the store: WeChat allows a limited
number of token requests a day and each new token ends the previous one a few minutes
later, so processes refreshing on their own would keep invalidating each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.cluster import Leases
from bot.config import WeChatConfig
from bot.errors import ChannelSendError
from bot.store import Store

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}  # invalid, not the latest, or expired access_token
RETRYABLE = {-1: "WeChat is busy (-1)", 45009: "API call limit reached (45009)"}
REFUSED = {
    45015: "the customer has not written for more than 48 hours (45015)",
    45047: "the message quota for this customer's window is used up (45047)",
    43004: "the customer has unfollowed the account (43004)",
    40003: "not a follower of this account (40003)",
    45080: "typing needs a customer message in the last 30 seconds (45080)",
    45081: "already shown as typing (45081)",
}


class WeChatApi:
    def __init__(self, config: WeChatConfig, store: Store, leases: Leases,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._store = store
        self._leases = leases
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._state_key = f"wechat:access_token:{config.app_id}"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.api_timeout_seconds))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # access_token

    async def access_token(self) -> str:
        """A token valid for at least `token_refresh_margin_seconds`, refreshed by one
        process at a time (the lease), and not at all when another one just did."""
        token = await self._stored_token()
        if token:
            return token
        async with self._leases.hold(f"wechat-token:{self._config.app_id}"):
            token = await self._stored_token()
            if token:
                return token
            return await self._fetch_token()

    async def _stored_token(self) -> str | None:
        state = await self._store.load_state(self._state_key)
        if state and state.get("expires_at", 0) - self._config.token_refresh_margin_seconds \
                > self._clock():
            return str(state["token"])
        return None

    async def _fetch_token(self) -> str:
        url = f"{self._config.api_base}/cgi-bin/token"
        params = {"grant_type": "client_credential", "appid": self._config.app_id,
                  "secret": self._config.app_secret}
        reply = await self._get_json(url, params)
        if "access_token" not in reply:
            code = reply.get("errcode")
            raise ChannelSendError(f"cannot get an access_token: {code} {reply.get('errmsg')}"
                                   " (check app_id, app_secret and the IP allow-list)",
                                   retryable=code in RETRYABLE)
        now = self._clock()
        await self._store.save_state(self._state_key, {
            "token": reply["access_token"], "expires_at": now + int(reply["expires_in"]),
            "fetched_at": now})
        log.info("wechat: new access_token, valid for %s s", reply["expires_in"])
        return str(reply["access_token"])

    async def _forget_token(self, token: str) -> None:
        state = await self._store.load_state(self._state_key)
        if state and state.get("token") == token:  # not one another process just fetched
            await self._store.save_state(self._state_key, {**state, "expires_at": 0})

    # calls

    async def _get_json(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            async with self._http().get(url, params=params) as response:
                return await _json(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChannelSendError(f"WeChat API unreachable: {exc!r}", retryable=True) from None

    async def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST to the API with the access_token; an expired or replaced token is refreshed
        and the call tried once more."""
        # Chinese must go as UTF-8, not \\u escapes: WeChat shows escapes to the customer.
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        for attempt in (1, 2):
            token = await self.access_token()
            try:
                async with self._http().post(
                        f"{self._config.api_base}{path}", params={"access_token": token},
                        data=body, headers={"Content-Type": "application/json"}) as response:
                    reply = await _json(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ChannelSendError(f"WeChat API unreachable: {exc!r}",
                                       retryable=True) from None
            if reply.get("errcode") in TOKEN_ERRORS and attempt == 1:
                log.info("wechat: access_token refused (%s); refreshing", reply["errcode"])
                await self._forget_token(token)
                continue
            return reply
        return reply

    async def send_text(self, openid: str, text: str) -> None:
        await self._checked("/cgi-bin/message/custom/send",
                            {"touser": openid, "msgtype": "text", "text": {"content": text}})

    async def typing(self, openid: str) -> None:
        await self._checked("/cgi-bin/message/custom/typing",
                            {"touser": openid, "command": "Typing"})

    async def _checked(self, path: str, payload: dict[str, Any]) -> None:
        """Call, retrying when WeChat is busy or unreachable; raise what it refused."""
        delay = 0.5
        for attempt in range(1, self._config.send_attempts + 1):
            try:
                reply = await self.call(path, payload)
            except ChannelSendError as exc:
                if not exc.retryable or attempt == self._config.send_attempts:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
                continue
            code = reply.get("errcode", 0)
            if code == 0:
                return
            if code in RETRYABLE and attempt < self._config.send_attempts:
                log.info("wechat: %s; trying again in %.1f s", RETRYABLE[code], delay)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            reason = REFUSED.get(code) or RETRYABLE.get(code) or \
                f"WeChat refused it: {code} {reply.get('errmsg', '')}"
            raise ChannelSendError(reason, retryable=code in RETRYABLE)
        raise AssertionError("unreachable")  # the loop returns or raises


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = await response.json(content_type=None)
    except (json.JSONDecodeError, aiohttp.ContentTypeError, UnicodeDecodeError):
        raise ChannelSendError(f"WeChat answered {response.status} without JSON",
                               retryable=response.status >= 500) from None
    if not isinstance(data, dict):
        raise ChannelSendError("WeChat answered JSON that is not an object", retryable=False)
    return data
