"""Text normalisation shared by the matcher and the handoff triggers.

NFKC folds full-width letters, digits and punctuation to half-width; casefold handles case;
punctuation of every script becomes a space. Chinese needs no segmenter: the matcher works on
character n-grams.
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def _is_punctuation_or_symbol(char: str) -> bool:
    return unicodedata.category(char)[0] in ("P", "S")


def normalize(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    cleaned = "".join(" " if _is_punctuation_or_symbol(c) else c for c in folded)
    return _SPACES.sub(" ", cleaned).strip()


def is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
        or 0x3040 <= code <= 0x30FF  # kana: treated like CJK for n-grams
    )


def detect_language(text: str, default: str) -> str:
    """`zh` when the text has Chinese characters, `en` when it has Latin letters only."""
    if any(is_cjk(c) for c in text):
        return "zh"
    if any(c.isascii() and c.isalpha() for c in text):
        return "en"
    return default
