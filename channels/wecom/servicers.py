"""WeCom's own servicers (接待人员), who answer in the WeCom app: kefu hands sessions to them.

WeCom gives every session a state, and only some moves between them (kf/service_state):

    0 new -> 1 the API (the bot), 2 the pool, 3 a servicer
    1 the API -> 2 the pool, 3 a servicer
    2 the pool -> 3 a servicer
    3 a servicer -> 3 another servicer, 4 ended
    4 ended: the customer's next message makes it 0 again

kf/send_msg writes to the customer only in states 0 and 1, so kefu says what it has to say
(the handoff message) before moving the session to the pool, and afterwards only with the
`msg_code` WeCom gives for an event (a servicer took the session, the session ended). What
the servicers write, and their taking, passing on and ending sessions, come back through
kf/sync_msg (`origin` 5 and `session_status_change`); channel.py turns them into
PlatformNews for the desk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.channel import PlatformNews, platform_holder
from bot.errors import ChannelSendError
from bot.store import Conversation
from channels.wecom.api import WeComApi
from channels.wecom.callback import NAME, SERVICER, customer_id, split_customer

log = logging.getLogger(__name__)

POOL, ENDED = 2, 4  # the service states kefu moves sessions to
TAKES_SESSIONS = 0  # a servicer's status in kf/servicer/list: 0 接待中, 1 停止接待
# session_status_change's change_type, as WeCom documents it
CHANGES = {1: "assigned", 2: "transferred", 3: "ended", 4: "assigned"}  # 4: taken up again


class WeComServicers:
    """kefu's side of WeCom's servicers: PlatformAgents (bot/channel.py) for the desk."""

    def __init__(self, api: WeComApi, keep_code: Callable[[str, str], None]) -> None:
        self._api = api
        self._keep_code = keep_code  # (customer, code): the next message to them uses it

    async def on_duty(self, conversation: Conversation) -> bool:
        open_kfid, _ = split_customer(conversation.user_id)
        try:
            servicers = await self._api.servicers(open_kfid)
        except ChannelSendError as exc:
            log.warning("wecom: cannot list the servicers of %s (%s); handing over anyway",
                        open_kfid, exc)
            return True  # WeCom's pool keeps the session until someone takes it
        return any(s.get("status", TAKES_SESSIONS) == TAKES_SESSIONS for s in servicers)

    async def hand_over(self, conversation: Conversation) -> str:
        """To WeCom's pool (待接入池), which gives it to a servicer by the account's rules."""
        open_kfid, external = split_customer(conversation.user_id)
        await self._api.trans_state(open_kfid, external, POOL)
        return platform_holder(NAME)

    async def end(self, conversation: Conversation) -> None:
        open_kfid, external = split_customer(conversation.user_id)
        code = await self._api.trans_state(open_kfid, external, ENDED)
        if code:
            self._keep_code(conversation.user_id, code)


def news(item: dict[str, Any], received_at: float) -> PlatformNews | None:
    """The desk's news in a sync_msg item: a servicer's message (origin 5) or a
    session_status_change event; None for anything else."""
    if item.get("origin") == SERVICER:
        body = item.get(str(item.get("msgtype", "")))
        text = str(body.get("content", "")) if item.get("msgtype") == "text" and \
            isinstance(body, dict) else f"[{item.get('msgtype', 'message')}]"
        return PlatformNews(NAME, customer_id(str(item.get("open_kfid", "")),
                                              str(item.get("external_userid", ""))),
                            "wrote", str(item.get("servicer_userid", "")),
                            float(item.get("send_time") or received_at), text,
                            str(item.get("msgid", "")) or None)
    event = item.get("event")
    if not isinstance(event, dict) or event.get("event_type") != "session_status_change":
        return None
    what = CHANGES.get(int(event.get("change_type", 0)))
    if what is None:
        return None
    person = str(event.get("new_servicer_userid") or event.get("old_servicer_userid") or "")
    return PlatformNews(NAME, customer_id(str(event.get("open_kfid", "")),
                                          str(event.get("external_userid", ""))),
                        what, person, float(item.get("send_time") or received_at),
                        can_tell=bool(event.get("msg_code")))
