"""Phone numbers and email addresses in what customers type, found and written one way.

Chinese mobiles with or without +86 (and spaces or dashes), landlines with an area code,
international numbers with +, and email addresses. Other runs of digits are order numbers
and dates, not phones. The same number typed two ways is one contact: `+86 138-1234-5678`
and `13812345678` both become `13812345678`; emails are compared in lower case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_MOBILE = re.compile(r"(?<!\d)(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_PHONE = re.compile(r"(?<![\d.])(?:\+|0)\d[\d -]{5,18}\d(?![\d.])")
MIN_PHONE_DIGITS = 7
_MAYBE = re.compile(r"@|\d(?:[ -]?\d){6}")


def might_hold_contact(text: str) -> bool:
    """A quick test before the full search: an @, or 7 digits in a row."""
    return _MAYBE.search(text) is not None


@dataclass(frozen=True, slots=True)
class Contact:
    kind: str  # "phone" or "email"
    typed: str  # as the customer wrote it
    value: str  # normalised: what records and searches use


def normalise_phone(typed: str) -> str:
    digits = re.sub(r"[^\d+]", "", typed)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    national = re.fullmatch(r"\+?86(1[3-9]\d{9})", digits)
    return national.group(1) if national else digits


def contact_spans(text: str) -> list[tuple[int, int, Contact]]:
    """Every email and phone number in `text` where it was typed, in order, repeats too."""
    found: list[tuple[int, int, Contact]] = []
    for kind, pattern in (("email", _EMAIL), ("phone", _MOBILE), ("phone", _PHONE)):
        for match in pattern.finditer(text):
            start, end = match.start(), match.end()
            if any(start < e and s < end for s, e, _ in found):
                continue  # a number inside an email, or a mobile the wider pattern sees too
            typed = match.group().strip()
            if kind == "phone" and sum(c.isdigit() for c in typed) < MIN_PHONE_DIGITS:
                continue
            value = typed.lower() if kind == "email" else normalise_phone(typed)
            found.append((start, end, Contact(kind, typed, value)))
    return sorted(found, key=lambda f: f[0])


def contacts_in(text: str) -> list[Contact]:
    """Every email and phone number in `text`, in order, each once."""
    unique: dict[str, Contact] = {}
    for _, _, contact in contact_spans(text):
        unique.setdefault(contact.value, contact)
    return list(unique.values())
