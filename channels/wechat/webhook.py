"""WeChat's push protocol: signatures, AES envelopes, message XML and passive replies.

wechatpy does the AES envelope (PKCS#7, the 4-byte length in bytes, the AppID check) and
turns XML into message objects; its parser refuses XML entities, so an entity-expansion
payload is rejected before anything is expanded. kefu checks signatures itself, in constant
time and with a freshness window, and renders the passive reply itself, because wechatpy
puts text into CDATA sections without splitting `]]>`, which would let a reply break the
XML.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from typing import Any

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException

from bot.messages import Attachment, InboundEvent, InboundMessage
from bot.wire import same_secret
from channels.tencent.push import PushRejected, check_signed, field, parse_xml, sign
from channels.wechat.settings import WeChatConfig

NAME = "wechat"


def check_signature(config: WeChatConfig, query: dict[str, str], now: float) -> None:
    """The `signature` of token, timestamp and nonce, on a push no older than allowed."""
    check_signed(config.token, query.get("signature", ""), query.get("timestamp", ""),
                 query.get("nonce", ""), now=now, tolerance=config.timestamp_tolerance_seconds)


@dataclass(frozen=True, slots=True)
class Opened:
    xml: str  # the message itself, decrypted where it came encrypted
    encrypted: bool  # answer in kind


def open_push(config: WeChatConfig, crypto: WeChatCrypto | None, query: dict[str, str],
              body: bytes) -> Opened:
    """Check the envelope of a POSTed push and return the message XML inside."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PushRejected("body is not UTF-8", 400) from None
    if query.get("encrypt_type", "raw") == "aes":
        if crypto is None:
            raise PushRejected("an encrypted push, but the account is set to plain mode")
        msg_signature = query.get("msg_signature", "")
        encrypted = field(text, "Encrypt")
        if not same_secret(
                sign(config.token, query["timestamp"], query["nonce"], encrypted),
                msg_signature):
            raise PushRejected("forged msg_signature")
        try:
            xml = crypto.decrypt_message({"Encrypt": encrypted}, msg_signature,
                                         query["timestamp"], query["nonce"])
        except InvalidAppIdException:
            raise PushRejected("encrypted for another AppID") from None
        except (ValueError, UnicodeDecodeError, struct.error, binascii.Error, IndexError,
                TypeError):
            raise PushRejected("cannot decrypt: wrong EncodingAESKey or a damaged push",
                               400) from None
        return Opened(xml, encrypted=True)
    if config.mode == "safe":
        raise PushRejected("a plaintext push, but the account is in safe mode")
    return Opened(text, encrypted=False)


def parse_push(xml: str) -> Any:
    """A wechatpy message or event object (checked first with `parse_xml`)."""
    fields = parse_xml(xml)
    for required in ("ToUserName", "FromUserName", "CreateTime", "MsgType"):
        if not isinstance(fields.get(required), str):
            raise PushRejected(f"{required} missing", 400)
    return parse_message(xml)


def dedupe_key(message: Any) -> str:
    """MsgId for messages; sender and time for events, which have no MsgId."""
    if message.type == "event":
        return f"event:{message.source}:{message.time}:{message.event}"
    return f"msg:{message.id}"


def to_inbound(message: Any, received_at: float) -> InboundMessage | None:
    """kefu's own message for a push, or None for events kefu does not act on."""
    common = {"channel": NAME, "user_id": message.source, "received_at": received_at,
              "platform_msg_id": dedupe_key(message), "raw": message}
    if message.type == "event":
        if message.event in ("subscribe", "subscribe_scan", "scan", "click"):
            return InboundMessage(text="", event=InboundEvent.OPEN, **common)
        return None  # unsubscribe, view, location reports, template results...
    if message.type == "text":
        return InboundMessage(text=message.content or "", **common)
    if message.type == "voice" and message.recognition:  # WeChat's speech recognition
        return InboundMessage(text=message.recognition, **common)
    return InboundMessage(text="", attachments=(_attachment(message),), **common)


def _attachment(message: Any) -> Attachment:
    kind = message.type
    if kind == "image":
        return Attachment("image", message.image or "", message.media_id or "")
    if kind == "location":
        return Attachment("location", f"geo:{message.location_x},{message.location_y}",
                          message.label or "")
    if kind == "link":
        return Attachment("link", message.url or "", message.title or "")
    return Attachment(kind, getattr(message, "media_id", "") or "")


def cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_account: str, text: str, now: int) -> str:
    """The passive reply XML for one text message."""
    return (f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
            f"<FromUserName>{cdata(from_account)}</FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType>{cdata('text')}</MsgType>"
            f"<Content>{cdata(text)}</Content></xml>")


def seal(crypto: WeChatCrypto, xml: str, nonce: str, timestamp: str) -> str:
    """Encrypt and sign a reply for safe or compatible mode."""
    return str(crypto.encrypt_message(xml, nonce, timestamp))

