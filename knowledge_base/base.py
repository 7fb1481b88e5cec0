"""A knowledge base: its entries and the matcher built from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from knowledge_base.loader import Entry, load_entries
from knowledge_base.matcher import Matcher


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[Entry, ...]
    matcher: Matcher

    @classmethod
    def build(cls, entries: Sequence[Entry]) -> KnowledgeBase:
        return cls(tuple(entries), Matcher(entries))

    @classmethod
    def load(cls, folder: Path) -> KnowledgeBase:
        return cls.build(load_entries(folder))
