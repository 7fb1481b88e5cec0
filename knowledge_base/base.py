"""A knowledge base: its entries and the matcher built from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.config import AnswerTemplateLimits
from bot.errors import KnowledgeBaseError
from knowledge_base import vocabulary
from knowledge_base.loader import Entry, load_entries
from knowledge_base.matcher import Matcher
from knowledge_base.semantic import SemanticIndex, VectorCache
from knowledge_base.templates import AnswerTemplates
from knowledge_base.vocabulary import Vocabulary


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[Entry, ...]
    matcher: Matcher

    @property
    def vocabulary(self) -> Vocabulary:
        return self.matcher.vocabulary

    @classmethod
    def build(cls, entries: Sequence[Entry], words: Vocabulary | None = None,
              vectors: VectorCache | None = None) -> KnowledgeBase:
        """With `vectors`, matching is semantic as well as lexical."""
        kb = cls(tuple(entries), Matcher(entries, words or vocabulary.load(None)))
        return kb.with_vectors(vectors) if vectors is not None else kb

    def with_vectors(self, vectors: VectorCache) -> KnowledgeBase:
        """The same knowledge base, matching by meaning too."""
        if not self.entries:
            return self
        semantic = SemanticIndex.build([e.questions for e in self.entries],
                                       [e.answer for e in self.entries], vectors)
        return KnowledgeBase(self.entries, self.matcher.with_semantic(semantic))

    @classmethod
    def load(cls, folder: Path, vocabulary_file: Path | None = None,
             vectors: VectorCache | None = None,
             templates: AnswerTemplateLimits | None = None) -> KnowledgeBase:
        """The FAQ folder with kefu's vocabulary, extended by the shop's file if given;
        answer templates are checked under `templates` (the default limits if None)."""
        problems: list[str] = []
        try:
            words = vocabulary.load(vocabulary_file)
        except KnowledgeBaseError as exc:
            problems.extend(exc.problems)
        try:
            entries = load_entries(folder, AnswerTemplates(templates or AnswerTemplateLimits()))
        except KnowledgeBaseError as exc:
            problems.extend(exc.problems)
        if problems:
            raise KnowledgeBaseError(problems)
        return cls.build(entries, words, vectors)
