"""Tencent's callback envelope: SHA-1 signatures with a freshness window, and XML checked
before anything reads it (malformed XML and entities are refused, never expanded)."""

from __future__ import annotations

import hashlib
from typing import Any

import xmltodict

from bot.wire import same_secret


class PushRejected(Exception):
    """A push kefu will not act on; logged with the reason, answered with `status`."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.status = status


def sign(*parts: str) -> str:
    """Tencent's signature: SHA-1 of the parts sorted and joined."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signed(token: str, signature: str, timestamp: str, nonce: str, *signed: str,
                 now: float, tolerance: float, what: str = "signature") -> None:
    """`signature` must sign token, timestamp, nonce (and `signed`), and be recent."""
    if not (signature and timestamp and nonce):
        raise PushRejected(f"{what}, timestamp or nonce missing")
    if not same_secret(sign(token, timestamp, nonce, *signed), signature):
        raise PushRejected(f"forged {what}")
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        raise PushRejected(f"bad timestamp {timestamp[:20]!r}") from None
    if age > tolerance:
        raise PushRejected(f"stale timestamp ({age:.0f} s old): a replay?")


def parse_xml(xml: str) -> dict[str, Any]:
    """The fields of `<xml>...</xml>`; malformed XML and XML with entities are refused."""
    try:
        root = xmltodict.parse(xml)
    except ValueError as exc:  # entities are disabled: no expansion ever happens
        raise PushRejected(f"XML refused: {exc}", 400) from None
    except Exception as exc:  # expat's ExpatError and friends
        raise PushRejected(f"malformed XML: {exc}", 400) from None
    fields = root.get("xml") if isinstance(root, dict) else None
    if not isinstance(fields, dict):
        raise PushRejected("expected an <xml> document", 400)
    return fields


def field(xml: str, name: str) -> str:
    value = parse_xml(xml).get(name)
    if not isinstance(value, str) or not value:
        raise PushRejected(f"no {name} in the push", 400)
    return value
