"""WeCom's callback for customer service: a signed, encrypted nudge that says "messages are
waiting" (kf_msg_or_event); the messages themselves are read with kf/sync_msg.

wechatpy does the AES envelope (PKCS#7, the length prefix, the CorpID check); kefu checks
the msg_signature itself, in constant time and with a freshness window, before decrypting.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from typing import Any

from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from bot.messages import Attachment, InboundEvent, InboundMessage
from channels.tencent.push import PushRejected, check_signed, field, parse_xml
from channels.wecom.settings import WeComConfig

NAME = "wecom"
CUSTOMER, EVENT, SERVICER = 3, 4, 5  # a sync_msg item's `origin`
# msg_send_fail's fail_type, as WeCom documents it
SEND_FAILURES = {
    0: "WeCom could not deliver it (reason unknown)",
    1: "the customer-service account was deleted",
    2: "the application is closed",
    4: "the customer has not written for more than 48 hours",
    5: "the customer's session is closed",
    6: "WeCom's limit of 5 messages until the customer writes again was reached",
    10: "the customer refuses messages",
}


def crypto_for(config: WeComConfig) -> WeChatCrypto:
    return WeChatCrypto(config.token, config.encoding_aes_key, config.corp_id)


def verify_url(config: WeComConfig, crypto: WeChatCrypto, query: dict[str, str], now: float
               ) -> str:
    """The URL check made when the callback is saved: the decrypted echostr, to echo."""
    echostr = query.get("echostr", "")
    check_signed(config.token, query.get("msg_signature", ""), query.get("timestamp", ""),
                 query.get("nonce", ""), echostr, now=now,
                 tolerance=config.timestamp_tolerance_seconds, what="msg_signature")
    return str(_opened(lambda: crypto.check_signature(
        query["msg_signature"], query["timestamp"], query["nonce"], echostr)))


@dataclass(frozen=True, slots=True)
class Nudge:
    """Messages wait to be read for this customer-service account."""

    open_kfid: str
    token: str  # lifts sync_msg's strict rate limit for 10 minutes


def open_callback(config: WeComConfig, crypto: WeChatCrypto, query: dict[str, str],
                  body: bytes, now: float) -> Nudge | None:
    """The nudge in a POSTed callback; None for other WeCom events (not for kefu)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PushRejected("body is not UTF-8", 400) from None
    encrypted = field(text, "Encrypt")
    check_signed(config.token, query.get("msg_signature", ""), query.get("timestamp", ""),
                 query.get("nonce", ""), encrypted, now=now,
                 tolerance=config.timestamp_tolerance_seconds, what="msg_signature")
    xml = _opened(lambda: crypto.decrypt_message(
        {"Encrypt": encrypted}, query["msg_signature"], query["timestamp"], query["nonce"]))
    fields = parse_xml(str(xml))
    if fields.get("Event") != "kf_msg_or_event":
        return None
    return Nudge(str(fields.get("OpenKfId") or ""), str(fields.get("Token") or ""))


def _opened(decrypt: Any) -> Any:
    try:
        return decrypt()
    except InvalidCorpIdException:
        raise PushRejected("encrypted for another CorpID") from None
    except InvalidSignatureException:
        raise PushRejected("forged msg_signature") from None
    except (ValueError, UnicodeDecodeError, struct.error, binascii.Error, IndexError,
            TypeError):
        raise PushRejected("cannot decrypt: wrong EncodingAESKey or a damaged callback",
                           400) from None


def customer_id(open_kfid: str, external_userid: str) -> str:
    """One customer of one customer-service account: both are needed to write back."""
    return f"{open_kfid}:{external_userid}"


def split_customer(user_id: str) -> tuple[str, str]:
    open_kfid, _, external_userid = user_id.partition(":")
    return open_kfid, external_userid


def to_inbound(item: dict[str, Any], received_at: float) -> InboundMessage:
    """kefu's message for a customer's sync_msg item (origin 3)."""
    user = customer_id(str(item.get("open_kfid", "")), str(item.get("external_userid", "")))
    kind = str(item.get("msgtype", ""))
    body = item.get(kind)
    body = body if isinstance(body, dict) else {}
    text = ""
    attachments: tuple[Attachment, ...] = ()
    if kind == "text":
        text = str(body.get("content", ""))
    else:
        name = str(body.get("media_id") or body.get("title") or body.get("name") or "")
        attachments = (Attachment(kind or "unknown", "", name),)
    return InboundMessage(channel=NAME, user_id=user, platform_msg_id=str(item["msgid"]),
                          text=text, received_at=received_at, attachments=attachments,
                          raw=item)


def enter_session(item: dict[str, Any], received_at: float) -> InboundMessage:
    event = item["event"]
    return InboundMessage(
        channel=NAME, user_id=customer_id(str(event.get("open_kfid", "")),
                                          str(event.get("external_userid", ""))),
        platform_msg_id=str(item["msgid"]), text="", received_at=received_at,
        event=InboundEvent.OPEN, raw=item)
