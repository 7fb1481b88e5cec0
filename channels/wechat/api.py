"""The Official Account's customer-service messages and typing, over Tencent's API."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.cluster import Leases
from bot.store import Store
from channels.tencent.api import Platform, TencentApi
from channels.wechat.settings import WeChatConfig

REFUSED = {
    45015: "the customer has not written for more than 48 hours (45015)",
    45047: "the message quota for this customer's window is used up (45047)",
    43004: "the customer has unfollowed the account (43004)",
    40003: "not a follower of this account (40003)",
    45080: "typing needs a customer message in the last 30 seconds (45080)",
    45081: "already shown as typing (45081)",
}
WINDOW_CODES = frozenset({45015, 45047})


class WeChatApi(TencentApi):
    def __init__(self, config: WeChatConfig, store: Store, leases: Leases,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, Platform(
            "WeChat", config.app_id, "/cgi-bin/token",
            {"grant_type": "client_credential", "appid": config.app_id,
             "secret": config.app_secret}, REFUSED, WINDOW_CODES), store, leases, clock)

    async def send_text(self, openid: str, text: str) -> None:
        await self.checked("/cgi-bin/message/custom/send",
                           {"touser": openid, "msgtype": "text", "text": {"content": text}})

    async def typing(self, openid: str) -> None:
        await self.checked("/cgi-bin/message/custom/typing",
                           {"touser": openid, "command": "Typing"})
