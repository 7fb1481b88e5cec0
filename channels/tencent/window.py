"""When kefu may still write to a WeChat or WeCom customer, and how many messages it has left.

Both allow API messages only after the customer did something: 5 messages within 48 hours
of a message they sent; on an Official Account also 3 within a minute of following it,
scanning a code or clicking a menu (the rules since June 2023). Quotas do not add up: a new
action sets the quota to the larger of the two and the window to the later end. Passive
replies (the answer to a push) and WeCom's welcome_code greeting do not count. kefu keeps the
window in the store and refuses a send it knows the platform would refuse, saying why,
instead of spending an API call on it.
"""

from __future__ import annotations

from bot.store import Store
from channels.tencent.settings import TencentApiConfig


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

    async def take(self, openid: str, now: float) -> str | None:
        """Use one message of the window; the reason when there is none to use."""
        state = await self._store.load_state(self._key(openid))
        if state is None or state["until"] <= now:
            return ("the customer has not written for more than "
                    f"{self._config.message_window_seconds / 3600:g} hours; "
                    f"{self._platform} allows no message until they write again")
        if state["left"] <= 0:
            return (f"{self._platform}'s message quota for this customer is used up until "
                    "they write again")
        await self._store.save_state(self._key(openid), {**state, "left": state["left"] - 1})
        return None

    async def wrote_within(self, openid: str, seconds: float, now: float) -> bool:
        """Whether the customer's last message is at most `seconds` old (typing needs 30)."""
        state = await self._store.load_state(self._key(openid)) or {}
        last = state.get("last_message_at")
        return last is not None and now - last <= seconds
