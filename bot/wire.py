"""Reading what arrives from outside: JSON of any shape, secrets of any characters.

Python's JSON parser recurses once per level of nesting, so `[[[[...]]]]` 20,000 deep
raises RecursionError, which no handler expects; `hmac.compare_digest` raises TypeError
when a str holds anything but ASCII. Every adapter and the console read through these two
instead, so hostile input becomes a clear rejection, never a traceback.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadJson(ValueError):
    """The body is not JSON kefu can read (not JSON, not UTF-8, or nested too deeply)."""


def parse_json(data: str | bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise BadJson("nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadJson(str(exc)) from None


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a secret sent by a client with the configured one."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


def networks_of(texts: Sequence[str]) -> list[Network]:
    """Networks from settings like "10.0.0.0/8" (validated when the config was read)."""
    return [ipaddress.ip_network(text, strict=False) for text in texts]


def address_in(remote: str | None, networks: Sequence[Network]) -> bool:
    """Whether a client's address (`request.remote`) is in one of `networks`."""
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in networks)


def client_address(remote: str | None, forwarded_for: str, trusted: Sequence[Network]
                   ) -> str:
    """The client behind trusted proxies: X-Forwarded-For read from the right, skipping
    the proxies, when the request came from one; else the connection's own address."""
    address = remote or "?"
    if not address_in(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = hop
        if not address_in(hop, trusted):
            break
    return address
