"""How customers write: synonyms, filler around a question, and small talk.

kefu ships `vocabulary.yaml` beside this module; a shop's own file (`knowledge_base.
vocabulary` in config.yaml) adds to it, and is reloaded with the knowledge base. Everything
here works on `normalize`d text, so traditional characters and full-width forms are already
folded.

Chinese phrases match anywhere (Chinese has no spaces); phrases in Latin letters match whole
words only, so `u` is "you" but the u in "but" is not. At each place the longest phrase wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from bot.errors import KnowledgeBaseError
from bot.text import normalize

SHIPPED = Path(__file__).with_name("vocabulary.yaml")
SMALL_TALK_KINDS = ("thanks", "goodbye", "presence", "greeting", "acknowledge")
KEYS = ("synonyms", "filler", "small_talk", "particles")
SMALL_TALK_MAX_CHARS = 40  # longer messages carry a question, whatever words they use


def _latin(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression finding any of `phrases`, longest first at each place."""
    parts = []
    for phrase in sorted(set(phrases), key=len, reverse=True):
        before = r"(?<![a-z0-9])" if _latin(phrase[0]) else ""
        after = r"(?![a-z0-9])" if _latin(phrase[-1]) else ""
        parts.append(before + re.escape(phrase) + after)
    return re.compile("|".join(parts)) if parts else None


@dataclass(frozen=True)
class Vocabulary:
    synonyms: Mapping[str, str] = field(default_factory=dict)  # variant -> canonical
    filler: tuple[str, ...] = ()
    small_talk: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> phrases
    particles: tuple[str, ...] = ()

    @cached_property
    def _synonym_pattern(self) -> re.Pattern[str] | None:
        return _pattern(self.synonyms)

    @cached_property
    def _filler_pattern(self) -> re.Pattern[str] | None:
        return _pattern(self.canonical(f) for f in self.filler)

    @cached_property
    def _small_talk_patterns(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        patterns = []
        for kind in SMALL_TALK_KINDS:
            pattern = _pattern(self.canonical(p) for p in self.small_talk.get(kind, ()))
            if pattern is not None:
                patterns.append((kind, pattern))
        return tuple(patterns)

    @cached_property
    def _chatter_pattern(self) -> re.Pattern[str] | None:
        """Everything small talk may be made of."""
        return _pattern(self.canonical(p) for p in [
            *self.filler, *self.particles,
            *(p for phrases in self.small_talk.values() for p in phrases)])

    def canonical(self, normalized: str) -> str:
        """Every synonym read as its line's first word."""
        pattern = self._synonym_pattern
        if pattern is None:
            return normalized
        return pattern.sub(lambda m: self.synonyms[m.group(0)], normalized)

    def for_matching(self, normalized: str) -> str:
        """What the matcher compares: synonyms made one, filler left out. A message that
        is nothing but filler keeps its words (there is nothing else to match)."""
        text = self.canonical(normalized)
        pattern = self._filler_pattern
        if pattern is None:
            return text
        stripped = " ".join(pattern.sub(" ", text).split())
        return stripped or text

    def small_talk_kind(self, normalized: str) -> str | None:
        """The kind of small talk a message is, when it is nothing else: 'thanks', 'goodbye',
        'presence', 'greeting' or 'acknowledge'; None when it asks something."""
        if not normalized or len(normalized) > SMALL_TALK_MAX_CHARS:
            return None
        normalized = self.canonical(normalized)
        chatter = self._chatter_pattern
        if chatter is None or chatter.sub(" ", normalized).strip():
            return None  # something is left that is not small talk
        for kind, pattern in self._small_talk_patterns:
            if pattern.search(normalized):
                return kind
        return None

    def extended(self, other: Vocabulary) -> Vocabulary:
        small_talk = {kind: (*self.small_talk.get(kind, ()), *other.small_talk.get(kind, ()))
                      for kind in SMALL_TALK_KINDS}
        return Vocabulary({**self.synonyms, **other.synonyms}, (*self.filler, *other.filler),
                          small_talk, (*self.particles, *other.particles))


def _words(node: object, where: str, problems: list[str]) -> list[str]:
    if node is None:
        return []
    if not isinstance(node, list) or not all(isinstance(w, str | int) for w in node):
        problems.append(f"{where}: expected a list of words, like [怎么, 咋]")
        return []
    words = [normalize(str(w)) for w in node]
    if not all(words):
        problems.append(f"{where}: an empty word (or only punctuation)")
    return [w for w in words if w]


def parse(text: str, name: str) -> Vocabulary:
    """A vocabulary file's contents, or KnowledgeBaseError listing every problem."""
    try:
        root = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise KnowledgeBaseError([f"{name}{f':{mark.line + 1}' if mark else ''}: not valid "
                                  f"YAML: {getattr(exc, 'problem', None) or exc}"]) from None
    if root is None:
        return Vocabulary()
    if not isinstance(root, dict):
        raise KnowledgeBaseError([f"{name}: expected the keys {', '.join(KEYS)}"])
    problems = [f"{name}: unknown key {key!r} (expected {', '.join(KEYS)})"
                for key in root if key not in KEYS]
    synonyms: dict[str, str] = {}
    groups = root.get("synonyms") or []
    if not isinstance(groups, list):
        problems.append(f"{name}: synonyms: expected a list of lines like [怎么, 咋, 如何]")
        groups = []
    for i, group in enumerate(groups, 1):
        words = _words(group, f"{name}: synonyms line {i}", problems)
        if len(words) < 2:
            problems.append(f"{name}: synonyms line {i}: needs a word and at least one other "
                            "way of writing it")
            continue
        for variant in words[1:]:
            if variant != words[0]:
                synonyms[variant] = words[0]
    small_talk: dict[str, tuple[str, ...]] = {}
    kinds = root.get("small_talk") or {}
    if not isinstance(kinds, dict):
        problems.append(f"{name}: small_talk: expected kinds ({', '.join(SMALL_TALK_KINDS)}) "
                        "each with a list of phrases")
        kinds = {}
    for kind, phrases in kinds.items():
        if kind not in SMALL_TALK_KINDS:
            problems.append(f"{name}: small_talk: unknown kind {kind!r} (expected "
                            f"{', '.join(SMALL_TALK_KINDS)})")
            continue
        small_talk[kind] = tuple(_words(phrases, f"{name}: small_talk.{kind}", problems))
    filler = _words(root.get("filler"), f"{name}: filler", problems)
    particles = _words(root.get("particles"), f"{name}: particles", problems)
    if problems:
        raise KnowledgeBaseError(problems)
    return Vocabulary(synonyms, tuple(filler), small_talk, tuple(particles))


def load(path: Path | None) -> Vocabulary:
    """kefu's shipped vocabulary, extended by the shop's file at `path` (if it exists)."""
    vocabulary = parse(SHIPPED.read_text(encoding="utf-8"), SHIPPED.name)
    if path is None or not path.exists():
        return vocabulary
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KnowledgeBaseError([f"{path.name}: not UTF-8 text (byte {exc.start}); save the "
                                  "file as UTF-8"]) from None
    except OSError as exc:
        raise KnowledgeBaseError([f"{path.name}: cannot read: {exc.strerror}"]) from None
    return vocabulary.extended(parse(text, path.name))
