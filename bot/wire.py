"""Reading what arrives from outside: JSON of any shape, secrets of any characters.

Python's JSON parser recurses once per level of nesting, so `[[[[...]]]]` 20,000 deep
raises RecursionError, which no handler expects; `hmac.compare_digest` raises TypeError
when a str holds anything but ASCII. Every adapter and the console read through these two
instead, so hostile input becomes a clear rejection, never a traceback.
"""

from __future__ import annotations

import hmac
import json
from typing import Any


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
