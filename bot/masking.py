"""Personal data masked where it leaves kefu: exports, webhook payloads, log lines.

What is masked: phone numbers and emails (found as handoff/contacts.py finds them),
resident ID-card numbers (身份证号: 18 characters whose check digit is right) and bank-card
numbers (13-19 digits, spaces or dashes allowed, that pass the Luhn check). The checks come
from python-stdnum, which keeps the official algorithms (GB 11643 and ISO/IEC 7812), so a
run of digits that is not a valid number (an order number, a date) is left alone.

What stays readable is what an agent needs to tell two people apart on the telephone:
`138****5678`, `a***@example.com`, `110***********851X`, `************1234`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from stdnum import luhn
from stdnum.cn import ric

from handoff.contacts import contact_spans, normalise_phone

_ID_CARD = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_BANK_CARD = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){14,18}(?![\d-])")  # 15-19 digits
_KEFU_ID = re.compile(r"C?[0-9a-f]{12,32}")  # uuid4().hex, or C and 12 of it
_MOBILE_WITH_COUNTRY = re.compile(r"(?:00)?861[3-9]\d{9}")  # may pass Luhn too
_MAYBE = re.compile(r"@|\d(?:[ -]?\d){6}")  # anything to mask holds an @ or 7 digits
_WORD = re.compile(r"[0-9A-Za-z]+")
# A visitor's or a conversation's id (v + uuid4().hex...): hex with letters in it.
_HEX_ID = re.compile(r"[A-Za-z]?(?=[0-9]*[a-fA-F])[0-9a-fA-F]{15,}")


def _inside_identifier(text: str, start: int, end: int) -> bool:
    """Whether digits at start:end are part of an id rather than a number on their own: a
    hex id (`v3f8a13812345678ab` holds a phone-like run), or letters on both sides."""
    if not (start and text[start - 1].isascii() and text[start - 1].isalnum()) and not (
            end < len(text) and text[end].isascii() and text[end].isalnum()):
        return False
    word = next((w for w in _WORD.finditer(text) if w.start() <= start < w.end()), None)
    if word is None:  # it begins with + or (
        return False
    if _HEX_ID.fullmatch(word.group()):
        return True
    return word.start() < start and end < word.end() and text[start - 1].isalpha() \
        and text[end].isalpha()


def mask_id_card(number: str) -> str:
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_bank_card(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_phone(typed: str) -> str:
    digits = normalise_phone(typed).lstrip("+")
    if len(digits) <= 7:
        return digits[:2] + "*" * (len(digits) - 2)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_email(address: str) -> str:
    name, _, domain = address.partition("@")
    return f"{name[:1]}***@{domain}"


def _spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, masked) for every piece of personal data in `text`, not overlapping."""
    found: list[tuple[int, int, str]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or e <= start for s, e, _ in found)

    for match in _ID_CARD.finditer(text):
        if ric.is_valid(match.group()):
            found.append((match.start(), match.end(), mask_id_card(match.group())))
    for match in _BANK_CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if free(match.start(), match.end()) and luhn.is_valid(digits) \
                and not _MOBILE_WITH_COUNTRY.fullmatch(digits) \
                and not _inside_identifier(text, match.start(), match.end()):
            found.append((match.start(), match.end(), mask_bank_card(match.group())))
    for start, end, contact in contact_spans(text):
        if free(start, end) and not (contact.kind == "phone"
                                     and _inside_identifier(text, start, end)):
            masked = mask_email(contact.typed) if contact.kind == "email" else \
                mask_phone(contact.typed)
            found.append((start, end, masked))
    return sorted(found)


def mask_text(text: str) -> str:
    """`text` with every phone, email, ID-card and bank-card number masked."""
    if not _MAYBE.search(text):
        return text
    spans = _spans(text)
    if not spans:
        return text
    pieces, last = [], 0
    for start, end, masked in spans:
        pieces += [text[last:start], masked]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _is_identifier(key: str) -> bool:
    """Ids (kefu's, or a channel's for the customer) are not masked: they must stay usable,
    and a channel's id that looks like a number is not a phone."""
    return key in ("id", "customer") or key.endswith("_id") or key.endswith("_ids")


def mask_json(value: Any, key: str = "") -> Any:
    """A JSON-like value with every text in it masked, ids left as they are."""
    if isinstance(value, str):
        return value if _is_identifier(key) or _KEFU_ID.fullmatch(value) else mask_text(value)
    if isinstance(value, dict):
        return {k: mask_json(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_json(v, key) for v in value]
    return value


# A log record's own text fields: names and places in the code, or masked already.
_RECORD_FIELDS = frozenset({"msg", "name", "levelname", "pathname", "filename", "module",
                            "funcName", "processName", "threadName", "taskName", "exc_text"})


class MaskingFilter(logging.Filter):
    """Masks each line's message and `extra=` fields before any handler formats it."""

    def __init__(self, mask: Callable[[str], str] = mask_text) -> None:
        super().__init__()
        self._mask = mask

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:  # a traceback may quote what was said
            record.exc_text = self._mask(logging.Formatter().formatException(record.exc_info))
        message = record.getMessage()
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and name not in _RECORD_FIELDS \
                    and not _is_identifier(name):
                setattr(record, name, self._mask(value))
        return True
