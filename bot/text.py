"""Text normalisation shared by the matcher and the handoff triggers.

NFKC folds full-width letters, digits and punctuation to half-width; casefold handles case;
OpenCC folds traditional characters to simplified (退貨 is 退货: customers in Hong Kong and
Taiwan, and some IMEs, type them), by phrases rather than one character at a time, which a
hand-made table would get wrong; punctuation of every script becomes a space. Chinese needs
no segmenter: the matcher works on character n-grams, so spaces typed between Chinese words
(我 想 退货: some customers and voice input put them) are dropped, and 我想退货 meets it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import opencc

_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF),
    (0x3040, 0x30FF),  # kana: treated like CJK for n-grams
)
_SPACES = re.compile(r"\s+")
_CJK_CLASS = "[" + "".join(f"{chr(low)}-{chr(high)}" for low, high in _CJK_RANGES) + "]"
_CJK_CHAR = re.compile(_CJK_CLASS)
_SPACE_IN_CHINESE = re.compile(rf"(?<={_CJK_CLASS})\s+(?={_CJK_CLASS})")


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
    joined = _SPACE_IN_CHINESE.sub("", folded)  # punctuation still parts clauses, below
    cleaned = "".join(" " if _is_punctuation_or_symbol(c) else c for c in joined)
    return _SPACES.sub(" ", cleaned).strip()


def is_cjk(char: str) -> bool:
    return _CJK_CHAR.match(char) is not None


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
