"""Fuzzy FAQ matching that can explain itself and knows when it is unsure.

Each example question is indexed by features weighted by inverse frequency: Chinese runs
give characters, character pairs (no segmenter needed) and the pinyin of each pair, so a
homophone typed with a pinyin IME (推款 for 退款) still meets its word; other words give the
word, its light stem, its character trigrams (which tolerate typos) and pairs of
neighbouring content words. Questions and queries are read through the vocabulary first
(knowledge_base/vocabulary.py): synonyms made one, filler left out. A query's candidates
come from the index by cosine similarity and by how much of the query they cover; the best
few are re-scored together with rapidfuzz's `ratio` and `token_sort_ratio` on normalised
text. `fuzz.WRatio` is deliberately not used: it lets
short questions match anything.

An entry is ranked by its best question plus a little of its next two (`support`): an
entry that several examples point to beats one lucky near-duplicate. Its `score`, the best
question's, is what the answer and clarify thresholds compare.

The index is a set of numpy arrays (one posting list per feature), so a query costs a few
vectorised gathers instead of a Python loop over every posting: well under 2 ms at 10,000
questions (benchmarks/).
"""

from __future__ import annotations

import copy
import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import groupby, pairwise

import numpy as np
from pypinyin import lazy_pinyin
from rapidfuzz import fuzz

from bot.text import is_cjk, normalize
from knowledge_base.loader import Entry
from knowledge_base.semantic import SemanticIndex
from knowledge_base.vocabulary import Vocabulary

# score = cosine, query coverage and edit similarity, weighted; each is 0..1 (edit 0..100).
COSINE_WEIGHT = 0.50
COVERAGE_WEIGHT = 0.15
EDIT_WEIGHT = 0.35
RESCORE_CANDIDATES = 30
LEXICAL_CANDIDATES = 10  # entries the lexical engine puts forward
# With a model: an entry's score is this much its lexical score (0..1), the rest semantic.
LEXICAL_WEIGHT = 0.2
# Lexical scores this high with this lead are near-copies of an example: no model needed.
SURE_SCORE = 90.0
SURE_LEAD = 30.0
SUPPORT_WEIGHT = 0.3  # how much an entry's 2nd and 3rd best questions add to its rank
# Function words say little about which FAQ is meant; their grams count for a fifth.
STOPWORD_FACTOR = 0.2
# A pair of characters that only sounds like the question's is weaker evidence than the
# same characters: its pinyin gram counts for half.
PINYIN_FACTOR = 0.5
STOPWORDS = frozenset((
    "a", "an", "the", "i", "me", "my", "we", "our", "you", "your", "is", "are", "am", "was",
    "be", "do", "does", "did", "can", "could", "will", "would", "to", "of", "for", "in", "on",
    "at", "by", "with", "and", "or", "it", "this", "that", "what", "how", "when", "where",
    "which", "why", "please", "hi", "hello",
    "我", "你", "您", "的", "了", "吗", "呢", "吧", "啊", "呀", "么", "是", "在", "有", "要",
    "想", "请", "能", "可以", "怎么", "什么", "怎样", "如何", "一下",
))
_SUFFIXES = ("ing", "ed", "es", "s")
_FACTORS = {"s": STOPWORD_FACTOR, "p": PINYIN_FACTOR}


def stem(word: str) -> str:
    """A light English stem: 'cards', 'carded', 'carding' -> 'card'."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=32768)
def pinyin(char: str) -> str:
    """A character's most common reading, without tones: homophones meet."""
    return lazy_pinyin(char)[0]


def features(normalized: str) -> Counter[str]:
    """Chinese runs give characters, character pairs and the pairs' pinyin; other words
    give the word, its stem, its character trigrams and pairs of neighbouring content
    words. Function words get their own `s:` grams, weighted down."""
    grams: Counter[str] = Counter()
    content: list[str] = []  # stems of whole non-Chinese words, for word pairs
    for word in normalized.split(" "):
        if word in STOPWORDS:
            grams["s:" + word] += 1
            continue
        if word and not any(is_cjk(c) for c in word):
            grams["m:" + stem(word)] += 1
            content.append(stem(word))
        for cjk, chars in groupby(word, key=is_cjk):
            run = "".join(chars)
            if cjk:
                for i, char in enumerate(run):
                    grams[("s:" if char in STOPWORDS else "c:") + char] += 1
                    if i + 1 < len(run):
                        grams["c:" + run[i : i + 2]] += 1
                        grams[f"p:{pinyin(char)}_{pinyin(run[i + 1])}"] += 1
            else:
                grams["w:" + run] += 1
                padded = f" {run} "
                for i in range(len(padded) - 2):
                    grams["t:" + padded[i : i + 3]] += 1
    for first, second in pairwise(content):
        grams[f"b:{first}_{second}"] += 1
    return grams


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: Entry
    score: float  # 0..100: lexical and semantic together (lexical alone without a model)
    question: str  # the example question that matched best
    cosine: float  # lexical: the best question's feature cosine
    edit: float  # lexical: the best question's edit similarity, 0..100
    support: float  # the lexical rank: the best question plus a little of the next two
    lexical: float = 0.0  # 0..100: the best question's lexical score (0: not a lexical match)
    semantic: float | None = None  # 0..1: the entry's semantic score, with a model


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the decision weighs (knowledge_base/decide.py): how well the best entry
    matches, and by how much it leads the best other entry, by each engine. Leads, not
    levels, are what hold across knowledge bases: a large one with look-alike entries
    scores everything high."""

    lexical_best: float  # 0..1
    lexical_lead: float
    chinese: bool
    semantic_best: float | None = None  # None: matched without a model
    semantic_lead: float = 0.0
    combined_best: float = 0.0
    combined_lead: float = 0.0
    lexical_agrees: bool = False  # the best entry is the lexical engine's best too
    semantic_agrees: bool = False
    semantic_neighbours: float = 0.0  # its examples' share of the query's nearest questions


@dataclass(frozen=True, slots=True)
class MatchResult:
    query: str
    candidates: tuple[Candidate, ...]  # best first, one per entry
    evidence: Evidence | None = None  # None: nothing matched at all

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def runner_up(self) -> Candidate | None:
        return self.candidates[1] if len(self.candidates) > 1 else None


QueryVector = Callable[[], "np.ndarray | None"]


class Matcher:
    def __init__(self, entries: Sequence[Entry], vocabulary: Vocabulary | None = None,
                 semantic: SemanticIndex | None = None) -> None:
        self.vocabulary = vocabulary or Vocabulary()
        self.semantic = semantic
        self._entries = tuple(entries)
        self._entry_index = {e.id: i for i, e in enumerate(self._entries)}
        self._questions: list[tuple[Entry, str, str]] = []  # entry, original, as matched
        for entry in entries:
            for question in entry.questions:
                self._questions.append((entry, question, self.readable(question)))
        self._readable = np.array([norm for _, _, norm in self._questions], dtype=object)
        # Which questions and entries answer in which language: a customer gets an entry
        # in theirs.
        languages = {e.lang for e in self._entries} - {None}
        self._languages = {lang: np.array([e.lang in (lang, None) for e, _, _ in
                                           self._questions], dtype=bool) for lang in languages}
        self._entry_languages = {lang: np.array([e.lang in (lang, None) for e in self._entries],
                                                dtype=bool) for lang in languages}
        counts = [features(norm) for _, _, norm in self._questions]
        document_frequency: Counter[str] = Counter()
        for grams in counts:
            document_frequency.update(grams.keys())
        total = len(counts)
        self._idf = {
            g: math.log((total + 1) / (df + 1)) + 1.0 for g, df in document_frequency.items()
        }
        self._unseen_idf = math.log(total + 1) + 1.0
        postings: dict[str, list[tuple[int, float]]] = {g: [] for g in document_frequency}
        for index, grams in enumerate(counts):
            for gram, weight in self._weights(grams).items():
                postings[gram].append((index, weight))
        # One posting list per gram, as slices of two flat arrays.
        self._slices: dict[str, tuple[int, int]] = {}
        documents: list[int] = []
        weights: list[float] = []
        for gram, items in postings.items():
            start = len(documents)
            documents.extend(i for i, _ in items)
            weights.extend(w for _, w in items)
            self._slices[gram] = (start, len(documents))
        self._documents = np.asarray(documents, dtype=np.int32)
        self._posting_weights = np.asarray(weights, dtype=np.float32)

    def _weights(self, grams: Counter[str]) -> dict[str, float]:
        weighted = {
            g: (1.0 + math.log(n)) * self._idf.get(g, self._unseen_idf)
            * _FACTORS.get(g[0], 1.0)
            for g, n in grams.items()
        }
        norm = math.sqrt(sum(w * w for w in weighted.values())) or 1.0
        return {g: w / norm for g, w in weighted.items()}

    def _similarities(self, query_weights: dict[str, float]
                      ) -> tuple[np.ndarray, np.ndarray] | None:
        """Cosine and covered query weight for every question, by a vectorised gather."""
        known = [(self._slices[g], w) for g, w in query_weights.items() if g in self._slices]
        if not known:
            return None
        starts = np.array([a for (a, _), _ in known], dtype=np.int64)
        lengths = np.array([b - a for (a, b), _ in known], dtype=np.int64)
        # Every posting of every query gram, in one vectorised step: position i of gram k
        # is starts[k] + i.
        ends = np.cumsum(lengths)
        picks = np.arange(ends[-1]) + np.repeat(starts - (ends - lengths), lengths)
        query = np.repeat(np.array([w for _, w in known], dtype=np.float32), lengths)
        documents = self._documents[picks]
        size = len(self._questions)
        cosine = np.bincount(documents, weights=self._posting_weights[picks] * query,
                             minlength=size)
        covered = np.bincount(documents, weights=query, minlength=size)
        return cosine, covered

    def with_semantic(self, semantic: SemanticIndex) -> Matcher:
        """This lexical index, with a semantic index beside it."""
        matcher = copy.copy(self)
        matcher.semantic = semantic
        return matcher

    def readable(self, text: str) -> str:
        """`text` as the matcher compares it: normalised, read through the vocabulary."""
        return self.vocabulary.for_matching(normalize(text))

    def match(self, text: str, limit: int = 3, exclude_self: bool = False,
              lang: str | None = None, query_vector: QueryVector | None = None,
              lexical_first: bool = True) -> MatchResult:
        """The best entries for `text`. With `exclude_self`, a question written exactly like
        `text` is left out: how the knowledge base sees one of its own examples. With
        `lang`, only entries in that language (or in none) are candidates, if there are
        any in it. `query_vector` gives the text's embedding, when the knowledge base has
        a semantic index; it is asked only if the lexical match is not already sure (or
        always, without `lexical_first`)."""
        query = self.readable(text)
        lexical = self._lexical(query, exclude_self, lang) if query else []
        chinese = any(is_cjk(c) for c in query)
        vector = None
        if self.semantic is not None and query_vector is not None and query \
                and not (lexical_first and _sure(lexical)):
            vector = query_vector()
        if vector is None:
            return self._lexical_result(query, lexical, chinese, limit)
        return self._hybrid_result(query, lexical, vector, chinese, limit, exclude_self, lang)

    def _lexical(self, query: str, exclude_self: bool, lang: str | None) -> list[Candidate]:
        """Entries by lexical rank (support), best first."""
        if not self._questions:
            return []
        query_weights = self._weights(features(query))
        found = self._similarities(query_weights)
        if found is None:
            return []
        cosine, covered = found
        coverage = covered / sum(query_weights.values())
        first = COSINE_WEIGHT * np.minimum(cosine, 1.0) + COVERAGE_WEIGHT * coverage
        allowed = self._languages.get(lang) if lang is not None else None
        if allowed is not None:
            first = np.where(allowed, first, -1.0)
            cosine = np.where(allowed, cosine, 0.0)
        count = min(RESCORE_CANDIDATES + exclude_self, len(first))
        shortlist = np.argpartition(-first, count - 1)[:count]
        # (score, question index, edit similarity) of each entry's shortlisted questions
        by_entry: dict[str, list[tuple[float, int, float]]] = {}
        for index in shortlist.tolist():
            entry, _, norm = self._questions[index]
            if cosine[index] <= 0 or (exclude_self and norm == query):
                continue
            edit = max(fuzz.ratio(query, norm), fuzz.token_sort_ratio(query, norm))
            score = round(100.0 * float(first[index]) + EDIT_WEIGHT * edit, 1)
            by_entry.setdefault(entry.id, []).append((score, index, edit))
        ranked = []
        for scored in by_entry.values():
            scored.sort(reverse=True)
            score, index, edit = scored[0]
            entry, question, _ = self._questions[index]
            support = round(score + SUPPORT_WEIGHT * sum(s for s, _, _ in scored[1:3]), 1)
            ranked.append(Candidate(entry, score, question, round(float(cosine[index]), 3),
                                    round(edit, 1), support, lexical=score))
        ranked.sort(key=lambda c: -c.support)
        return ranked[:LEXICAL_CANDIDATES]

    @staticmethod
    def _lexical_result(query: str, lexical: list[Candidate], chinese: bool, limit: int
                        ) -> MatchResult:
        if not lexical:
            return MatchResult(query, ())
        best = lexical[0].score / 100
        others = [c.score / 100 for c in lexical[1:]]
        evidence = Evidence(best, best - max(others, default=0.0), chinese)
        return MatchResult(query, tuple(lexical[:limit]), evidence)

    def _hybrid_result(self, query: str, lexical: list[Candidate], vector: np.ndarray,
                       chinese: bool, limit: int, exclude_self: bool, lang: str | None
                       ) -> MatchResult:
        assert self.semantic is not None
        semantic_index = self.semantic
        if exclude_self:  # the same question, written the same way, does not count
            same = np.flatnonzero(self._readable == query)
            if len(same):
                questions = semantic_index.questions.copy()
                questions[same] = 0.0
                semantic_index = replace(semantic_index, questions=questions)
        semantic, similarities = semantic_index.scores(vector)
        lexical_scores = np.zeros(len(self._entries))
        by_id = {c.entry.id: c for c in lexical}
        for candidate in lexical:
            lexical_scores[self._entry_index[candidate.entry.id]] = candidate.score / 100
        combined = LEXICAL_WEIGHT * lexical_scores + (1 - LEXICAL_WEIGHT) * semantic
        # Candidates come from the customer's language; the leads are measured against
        # every other entry, whatever its language (the model reads all of them), so that
        # one entry alone in a language does not lead by default.
        allowed = self._entry_languages.get(lang) if lang is not None else None
        eligible = np.where(allowed, combined, -1.0) if allowed is not None else combined
        order = np.argsort(-eligible)
        best = int(order[0])

        def lead(values: np.ndarray) -> float:
            others = np.delete(values, best)
            return float(values[best] - (np.max(others) if len(others) else 0.0))

        evidence = Evidence(
            lexical_best=float(lexical_scores[best]), lexical_lead=lead(lexical_scores),
            chinese=chinese, semantic_best=float(semantic[best]), semantic_lead=lead(semantic),
            combined_best=float(combined[best]), combined_lead=lead(combined),
            lexical_agrees=bool(lexical) and lexical[0].entry.id == self._entries[best].id,
            semantic_agrees=best == int(np.argmax(semantic)),
            semantic_neighbours=semantic_index.neighbours(similarities, best))
        candidates = []
        for index in order[:limit].tolist():
            if eligible[index] < 0:
                break
            entry = self._entries[index]
            found = by_id.get(entry.id)
            question = found.question if found else self._closest_question(index, vector)
            candidates.append(Candidate(
                entry, round(100 * float(combined[index]), 1), question,
                found.cosine if found else 0.0, found.edit if found else 0.0,
                found.support if found else 0.0, lexical=found.score if found else 0.0,
                semantic=round(float(semantic[index]), 3)))
        return MatchResult(query, tuple(candidates), evidence)

    def _closest_question(self, entry_index: int, vector: np.ndarray) -> str:
        assert self.semantic is not None
        start = int(self.semantic.starts[entry_index])
        entry = self._entries[entry_index]
        rows = self.semantic.questions[start:start + len(entry.questions)]
        return entry.questions[int(np.argmax(rows @ vector))]


def _sure(lexical: list[Candidate]) -> bool:
    """A match the model could not improve on: the customer wrote practically one of the
    examples, and nothing else comes close."""
    if not lexical:
        return False
    runner_up = lexical[1].score if len(lexical) > 1 else 0.0
    return lexical[0].score >= SURE_SCORE and lexical[0].score - runner_up >= SURE_LEAD
