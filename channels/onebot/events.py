"""OneBot v11 events as kefu's messages, and CQ codes read as text.

A message comes as a string with CQ codes (`[CQ:face,id=14]你好`, with `&#91;`, `&#93;`,
`&#44;` and `&amp;` escaping) or as a list of segments; kefu reads the text and records the
rest (pictures, files, voice) as attachments.
"""

from __future__ import annotations

import re
from typing import Any

from bot.messages import Attachment, InboundEvent, InboundMessage

NAME = "onebot"
CQ_CODE = re.compile(r"\[CQ:([a-z_]+)((?:,[^\]]*)?)\]")


def customer_id(self_id: Any, user_id: Any) -> str:
    """One QQ user of one QQ account (the client kefu works through)."""
    return f"{self_id}:{user_id}"


def split_customer(customer: str) -> tuple[str, int]:
    self_id, _, user_id = customer.partition(":")
    return self_id, int(user_id)


def _unescape(text: str) -> str:
    return text.replace("&#91;", "[").replace("&#93;", "]").replace("&#44;", ",") \
        .replace("&amp;", "&")


def read_message(message: Any) -> tuple[str, tuple[Attachment, ...]]:
    """The text and the attachments of a message in either format."""
    segments: list[tuple[str, dict[str, str]]] = []
    if isinstance(message, list):
        segments = [(str(s.get("type", "")), {k: str(v) for k, v in (s.get("data") or {})
                                               .items()}) for s in message if isinstance(s, dict)]
    elif isinstance(message, str):
        position = 0
        for code in CQ_CODE.finditer(message):
            segments.append(("text", {"text": _unescape(message[position:code.start()])}))
            data = dict(part.split("=", 1) for part in code.group(2).split(",")[1:]
                        if "=" in part)
            segments.append((code.group(1), {k: _unescape(v) for k, v in data.items()}))
            position = code.end()
        segments.append(("text", {"text": _unescape(message[position:])}))
    text = "".join(data.get("text", "") for kind, data in segments if kind == "text")
    attachments = tuple(Attachment(kind, data.get("url", "") or data.get("file", ""),
                                   data.get("name", data.get("file", "")))
                        for kind, data in segments
                        if kind in ("image", "record", "video", "file"))
    return text.strip(), attachments


def to_inbound(event: dict[str, Any], received_at: float) -> InboundMessage | None:
    """kefu's message for a private message or a new friend; None for everything else."""
    self_id = event.get("self_id")
    if event.get("post_type") == "message" and event.get("message_type") == "private":
        text, attachments = read_message(event.get("message", event.get("raw_message", "")))
        sender = event.get("sender")
        return InboundMessage(
            channel=NAME, user_id=customer_id(self_id, event.get("user_id")),
            platform_msg_id=f"{self_id}:{event.get('message_id')}", text=text,
            received_at=received_at, attachments=attachments,
            display_name=str(sender.get("nickname") or "") if isinstance(sender, dict) else "",
            raw=event)
    if event.get("post_type") == "notice" and event.get("notice_type") == "friend_add":
        user = event.get("user_id")
        return InboundMessage(
            channel=NAME, user_id=customer_id(self_id, user),
            platform_msg_id=f"{self_id}:friend_add:{user}:{event.get('time')}", text="",
            received_at=received_at, event=InboundEvent.OPEN, raw=event)
    return None
