"""Text normalisation shared by the matcher and the handoff triggers.

NFKC folds full-width letters, digits and punctuation to half-width; casefold handles case;
OpenCC folds traditional characters to simplified (退貨 is 退货: customers in Hong Kong and
Taiwan, and some IMEs, type them), by phrases rather than one character at a time, which a
hand-made table would get wrong; punctuation of every script becomes a space. Chinese needs
no segmenter: the matcher works on character n-grams.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import opencc

_SPACES = re.compile(r"\s+")


@cache
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _is_punctuation_or_symbol(char: str) -> bool:
    return unicodedata.category(char)[0] in ("P", "S")


def simplified(text: str) -> str:
    """Traditional characters folded to simplified; nothing else changed."""
    return _to_simplified().convert(text) if any(is_cjk(c) for c in text) else text


def normalize(text: str) -> str:
    folded = simplified(unicodedata.normalize("NFKC", text).casefold())
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


# Fewer Latin letters than this say nothing of a language: "ok", "hi" and "k" are typed by
# Chinese customers too.
MIN_LATIN_LETTERS = 4


def message_language(text: str, current: str) -> str:
    """The language to answer `text` in: Chinese if it has Chinese characters, English if it
    has words in Latin letters only, else the conversation's `current` one."""
    if any(is_cjk(c) for c in text):
        return "zh"
    if sum(c.isascii() and c.isalpha() for c in text) >= MIN_LATIN_LETTERS:
        return "en"
    return current
