"""When kefu may still write to a WeChat or WeCom customer, and how many messages it has left.

Both allow API messages only after the customer did something: 5 messages within 48 hours
of a message they sent; on an Official Account also 3 within a minute of following it,
scanning a code or clicking a menu (the rules since June 2023). Quotas do not add up: a new
action sets the quota to the larger of the two and the window to the later end. Passive
replies (the answer to a push) and WeCom's welcome_code greeting do not count. kefu keeps the
window in the store and refuses a send it knows the platform would refuse, saying why,
instead of spending an API call on it.

A message refused for the window or the quota, by kefu's count or by the platform's own
(WeChat's 45015 / 45047, when its view differs), is kept (its parts not yet sent), and sent
when the customer writes again, with a note of how old it is: an agent's answer is late,
never lost. Automatic messages (queue updates, holding messages, notices) are not kept: by
then they would be out of date.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.channel import DeliveryWindow
from bot.errors import ChannelSendError, WindowRefusal
from bot.messages import AUTOMATIC_KINDS, StoredMessage
from bot.store import ConversationEvent, Store
from channels.tencent.settings import TencentApiConfig

log = logging.getLogger(__name__)

LATE_NOTE = "（{age}前的消息 · sent {age_en} ago）"
SendPart = Callable[[str], Awaitable[None]]


def _age(seconds: float) -> tuple[str, str]:
    minutes = max(1, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} 分钟", f"{minutes} min"
    return f"{round(minutes / 60)} 小时", f"{round(minutes / 60)} h"


class DeliveryWindows:
    def __init__(self, config: TencentApiConfig, store: Store, platform: str, account: str
                 ) -> None:
        self._config = config
        self._store = store
        self._platform = platform
        self._prefix = f"{platform.lower()}:window:{account}"

    def _key(self, openid: str) -> str:
        return f"{self._prefix}:{openid}"

    async def opened(self, openid: str, by_message: bool, now: float) -> None:
        """The customer sent a message (`by_message`) or an event at `now`."""
        c = self._config
        length, quota = ((c.message_window_seconds, c.message_window_quota) if by_message
                         else (c.event_window_seconds, c.event_window_quota))
        state = await self._store.load_state(self._key(openid)) or {}
        still_open = state.get("until", 0.0) > now
        await self._store.save_state(self._key(openid), {
            "until": max(now + length, state.get("until", 0.0)),
            "left": max(quota, state.get("left", 0) if still_open else 0),
            "last_message_at": now if by_message else state.get("last_message_at"),
        })

    async def window(self, openid: str, now: float) -> DeliveryWindow | None:
        state = await self._store.load_state(self._key(openid))
        if state is None or state["until"] <= now:
            return None
        return DeliveryWindow(int(state["left"]), self._config.automatic_reserve,
                              float(state["until"]))

    async def take(self, openid: str, now: float, automatic: bool = False) -> str | None:
        """Use one message of the window; the reason when there is none to use. An
        automatic message (a queue update, a holding message, a notice) never takes the
        last `automatic_reserve`: those are for the agent's answer."""
        state = await self._store.load_state(self._key(openid))
        if state is None or state["until"] <= now:
            return ("the customer has not written for more than "
                    f"{self._config.message_window_seconds / 3600:g} hours; "
                    f"{self._platform} allows no message until they write again")
        if state["left"] <= 0:
            return (f"{self._platform}'s message quota for this customer is used up until "
                    "they write again")
        if automatic and state["left"] <= self._config.automatic_reserve:
            return (f"only {state['left']} of {self._platform}'s messages are left for this "
                    "customer; they are kept for the agent's answers")
        await self._store.save_state(self._key(openid), {**state, "left": state["left"] - 1})
        return None

    async def send(self, openid: str, message: StoredMessage, parts: list[str],
                   send_part: SendPart, now: float) -> None:
        """Send `parts` through the API, one message of the window each. What the window
        refuses is kept for the customer's next message (automatic messages excepted) and
        raised as a ChannelSendError that says so."""
        automatic = message.kind in AUTOMATIC_KINDS
        for i, part in enumerate(parts):
            refused = await self.take(openid, now, automatic)
            if not refused:
                try:
                    await send_part(part)
                    continue
                except WindowRefusal as exc:
                    await self._close(openid)
                    refused = str(exc)
            if not automatic:
                await self._keep(openid, message, parts[i:], now)
                refused += "; kept, it is sent when they write again"
            raise ChannelSendError(refused, retryable=False)

    async def _close(self, openid: str) -> None:
        """The platform said no for its window or quota: believe it until the customer
        writes again, so nothing more is spent on calls it will refuse."""
        state = await self._store.load_state(self._key(openid))
        if state is not None:
            await self._store.save_state(self._key(openid), {**state, "left": 0})

    def _kept_key(self, openid: str) -> str:
        return f"{self._prefix}:kept:{openid}"

    async def _keep(self, openid: str, message: StoredMessage, parts: list[str], now: float
                    ) -> None:
        kept = (await self._store.load_state(self._kept_key(openid)) or {}).get("kept", [])
        kept.append({"conversation_id": message.conversation_id, "seq": message.seq,
                     "parts": parts, "at": now})
        await self._store.save_state(self._kept_key(openid), {"kept": kept})

    async def send_kept(self, openid: str, send_part: SendPart, now: float) -> None:
        """The customer wrote: what was kept goes now, oldest first, each with its age."""
        state = await self._store.load_state(self._kept_key(openid))
        if not state or not state.get("kept"):
            return
        await self._store.save_state(self._kept_key(openid), {"kept": []})
        waiting: list[dict[str, Any]] = list(state["kept"])
        while waiting:
            kept = waiting[0]
            zh, en = _age(now - kept["at"])
            parts = [f"{LATE_NOTE.format(age=zh, age_en=en)}{kept['parts'][0]}",
                     *kept["parts"][1:]]
            for i, part in enumerate(parts):
                refused = await self.take(openid, now)
                if not refused:
                    try:
                        await send_part(part)
                        continue
                    except ChannelSendError as exc:
                        if isinstance(exc, WindowRefusal):
                            await self._close(openid)
                        refused = str(exc)
                log.warning("%s: a kept message waits again: %s", self._platform, refused)
                await self._store.save_state(self._kept_key(openid), {
                    "kept": [{**kept, "parts": kept["parts"][i:]}, *waiting[1:]]})
                return
            await self._store.record_event(ConversationEvent(
                kept["conversation_id"], now, "delivered_late", None,
                {"seq": kept["seq"], "age_seconds": round(now - kept["at"])}))
            waiting.pop(0)

    async def wrote_within(self, openid: str, seconds: float, now: float) -> bool:
        """Whether the customer's last message is at most `seconds` old (typing needs 30)."""
        state = await self._store.load_state(self._key(openid)) or {}
        last = state.get("last_message_at")
        return last is not None and now - last <= seconds
