"""The QQ bot platform's webhook: Ed25519-signed JSON payloads, the URL check (op 13), the
acknowledgement (op 12), and the events kefu acts on.

The key pair comes from the bot's secret, as QQ defines it: the secret repeated until it
is 32 bytes long, cut to 32, is the Ed25519 seed. QQ signs the timestamp followed by the
body; kefu signs the event_ts followed by the plain_token to prove it holds the secret.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.messages import Attachment, InboundEvent, InboundMessage
from bot.wire import BadJson, parse_json
from channels.tencent.push import PushRejected

NAME = "qq"
DISPATCH, ACK, VALIDATION = 0, 12, 13
ACKNOWLEDGED = {"op": ACK, "d": 0}


def key_for(secret: str) -> Ed25519PrivateKey:
    seed = secret
    while len(seed) < 32:
        seed *= 2
    return Ed25519PrivateKey.from_private_bytes(seed[:32].encode())


def check_signed(key: Ed25519PrivateKey, signature: str, timestamp: str, body: bytes,
                 now: float, tolerance: float) -> None:
    if not (signature and timestamp):
        raise PushRejected("X-Signature-Ed25519 or X-Signature-Timestamp missing", 401)
    try:
        key.public_key().verify(bytes.fromhex(signature), timestamp.encode() + body)
    except (InvalidSignature, ValueError, binascii.Error):
        raise PushRejected("forged signature", 401) from None
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        raise PushRejected(f"bad timestamp {timestamp[:20]!r}", 401) from None
    if age > tolerance:
        raise PushRejected(f"stale timestamp ({age:.0f} s old): a replay?", 401)


def parse(body: bytes) -> dict[str, Any]:
    try:
        payload = parse_json(body)
    except BadJson as exc:
        raise PushRejected(f"not JSON: {exc}", 400) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("op"), int):
        raise PushRejected("not a QQ payload (no op)", 400)
    return payload


def validation_answer(key: Ed25519PrivateKey, payload: dict[str, Any]) -> dict[str, str]:
    """op 13: sign event_ts + plain_token with the bot's key."""
    d = payload.get("d")
    if not isinstance(d, dict) or not all(isinstance(d.get(k), str)
                                          for k in ("plain_token", "event_ts")):
        raise PushRejected("URL check without plain_token and event_ts", 400)
    signed = key.sign((d["event_ts"] + d["plain_token"]).encode())
    return {"plain_token": d["plain_token"], "signature": signed.hex()}


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """What QQ lets kefu answer: a message (msg_id) or an event (event_id), for a while."""

    path: str  # /v2/users/{openid}/messages or /v2/groups/{group_openid}/messages
    field: str  # "msg_id" or "event_id"
    id: str
    kind: str  # "private", "group" or "event": which reply window applies


def user_customer(openid: str) -> str:
    return f"u:{openid}"


def group_customer(group_openid: str, member_openid: str) -> str:
    return f"g:{group_openid}:{member_openid}"


def to_inbound(payload: dict[str, Any], received_at: float
               ) -> tuple[InboundMessage, ReplyTo] | None:
    """kefu's message for a dispatched event, and how to answer it; None for the rest."""
    kind, d, event_id = payload.get("t"), payload.get("d"), str(payload.get("id") or "")
    if not isinstance(d, dict):
        raise PushRejected("an event without d", 400)
    if kind == "C2C_MESSAGE_CREATE":
        openid = _author(d, "user_openid")
        return (_message(d, user_customer(openid), received_at),
                ReplyTo(f"/v2/users/{openid}/messages", "msg_id", str(d["id"]), "private"))
    if kind == "GROUP_AT_MESSAGE_CREATE":
        group = str(d.get("group_openid", ""))
        member = _author(d, "member_openid")
        return (_message(d, group_customer(group, member), received_at),
                ReplyTo(f"/v2/groups/{group}/messages", "msg_id", str(d["id"]), "group"))
    if kind == "FRIEND_ADD":
        openid = str(d.get("openid", ""))
        return (_opened(user_customer(openid), event_id, received_at),
                ReplyTo(f"/v2/users/{openid}/messages", "event_id", event_id, "event"))
    if kind == "GROUP_ADD_ROBOT":
        group = str(d.get("group_openid", ""))
        member = str(d.get("op_member_openid", ""))
        return (_opened(group_customer(group, member), event_id, received_at),
                ReplyTo(f"/v2/groups/{group}/messages", "event_id", event_id, "event"))
    return None


def _author(d: dict[str, Any], field: str) -> str:
    """Who wrote a message: QQ sends `author` as an object with the openid in it."""
    author = d.get("author")
    openid = author.get(field) if isinstance(author, dict) else None
    if not isinstance(openid, str) or not openid:
        raise PushRejected(f"a message without author.{field}", 400)
    return openid


def _message(d: dict[str, Any], customer: str, received_at: float) -> InboundMessage:
    if "id" not in d:
        raise PushRejected("a message without id", 400)
    attachments = tuple(Attachment(str(a.get("content_type", "file")), str(a.get("url", "")),
                                   str(a.get("filename", "")))
                        for a in d.get("attachments") or [] if isinstance(a, dict))
    return InboundMessage(channel=NAME, user_id=customer, platform_msg_id=str(d["id"]),
                          text=str(d.get("content", "")).strip(), received_at=received_at,
                          attachments=attachments, raw=d)


def _opened(customer: str, event_id: str, received_at: float) -> InboundMessage:
    return InboundMessage(channel=NAME, user_id=customer, platform_msg_id=f"event:{event_id}",
                          text="", received_at=received_at, event=InboundEvent.OPEN)
