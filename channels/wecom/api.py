"""WeCom customer service's server API (微信客服): reading messages, sending, welcome codes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.cluster import Leases
from bot.store import Store
from channels.tencent.api import Platform, TencentApi
from channels.wecom.settings import WeComConfig


class WeComApi(TencentApi):
    def __init__(self, config: WeComConfig, store: Store, leases: Leases,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, Platform(
            "WeCom", config.corp_id, "/cgi-bin/gettoken",
            {"corpid": config.corp_id, "corpsecret": config.secret}, {}), store, leases, clock)

    async def sync_msg(self, open_kfid: str, cursor: str, token: str, limit: int
                       ) -> dict[str, Any]:
        """One page of messages and events after `cursor` (all of the last 3 days when
        empty); `token` is the callback's, which lifts the strict rate limit."""
        payload: dict[str, Any] = {"cursor": cursor, "limit": limit, "open_kfid": open_kfid}
        if token:
            payload["token"] = token
        return await self.checked("/cgi-bin/kf/sync_msg", payload)

    async def send_text(self, open_kfid: str, external_userid: str, text: str, msgid: str
                        ) -> None:
        await self.checked("/cgi-bin/kf/send_msg", {
            "touser": external_userid, "open_kfid": open_kfid, "msgid": msgid,
            "msgtype": "text", "text": {"content": text}})

    async def send_on_event(self, code: str, text: str, msgid: str) -> None:
        """The one message an event's code allows (the welcome_code: the greeting)."""
        await self.checked("/cgi-bin/kf/send_msg_on_event", {
            "code": code, "msgid": msgid, "msgtype": "text", "text": {"content": text}})

    async def nickname(self, external_userid: str) -> str:
        """The customer's WeChat nickname (kf/customer/batchget), '' when WeCom has none."""
        found = await self.checked("/cgi-bin/kf/customer/batchget",
                                   {"external_userid_list": [external_userid]})
        for customer in found.get("customer_list") or []:
            if isinstance(customer, dict) and customer.get("external_userid") == external_userid:
                return str(customer.get("nickname") or "")
        return ""

    async def servicers(self, open_kfid: str) -> list[dict[str, Any]]:
        """The account's servicers (接待人员) with their `status`: 0 takes sessions,
        1 stopped (停止接待)."""
        found = await self.checked("/cgi-bin/kf/servicer/list", None,
                                   params={"open_kfid": open_kfid})
        return [s for s in found.get("servicer_list") or [] if isinstance(s, dict)]

    async def trans_state(self, open_kfid: str, external_userid: str, state: int,
                          servicer: str = "") -> str:
        """Move the session to `state` (2 the pool, 3 a servicer, 4 ended); the `msg_code`
        WeCom gives for a message to the customer about it, if any."""
        payload: dict[str, Any] = {"open_kfid": open_kfid, "external_userid": external_userid,
                                   "service_state": state}
        if servicer:
            payload["servicer_userid"] = servicer
        answer = await self.checked("/cgi-bin/kf/service_state/trans", payload)
        return str(answer.get("msg_code") or "")
