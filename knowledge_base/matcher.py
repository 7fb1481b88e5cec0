"""Fuzzy FAQ matching that can explain itself and knows when it is unsure.

Each example question is indexed by features weighted by inverse frequency: Chinese runs
give characters and character pairs (no segmenter needed); other words give the word, its
light stem, its character trigrams (which tolerate typos) and pairs of neighbouring content
words. A query's candidates come from the index by cosine similarity and by how much of
the query they cover; the best few are re-scored together with rapidfuzz's `ratio` and
`token_sort_ratio` on normalised text. `fuzz.WRatio` is deliberately not used: it lets
short questions match anything.

An entry is ranked by its best question plus a little of its next two (`support`): an
entry that several examples point to beats one lucky near-duplicate. Its `score`, the best
question's, is what the answer and clarify thresholds compare.

The index is a set of numpy arrays (one posting list per feature), so a query costs a few
vectorised gathers instead of a Python loop over every posting: well under 2 ms at 10,000
questions (benchmarks/).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise

import numpy as np
from rapidfuzz import fuzz

from bot.text import is_cjk, normalize
from knowledge_base.loader import Entry

# score = cosine, query coverage and edit similarity, weighted; each is 0..1 (edit 0..100).
COSINE_WEIGHT = 0.50
COVERAGE_WEIGHT = 0.15
EDIT_WEIGHT = 0.35
RESCORE_CANDIDATES = 30
SUPPORT_WEIGHT = 0.3  # how much an entry's 2nd and 3rd best questions add to its rank
# Function words say little about which FAQ is meant; their grams count for a fifth.
STOPWORD_FACTOR = 0.2
STOPWORDS = frozenset((
    "a", "an", "the", "i", "me", "my", "we", "our", "you", "your", "is", "are", "am", "was",
    "be", "do", "does", "did", "can", "could", "will", "would", "to", "of", "for", "in", "on",
    "at", "by", "with", "and", "or", "it", "this", "that", "what", "how", "when", "where",
    "which", "why", "please", "hi", "hello",
    "我", "你", "您", "的", "了", "吗", "呢", "吧", "啊", "呀", "么", "是", "在", "有", "要",
    "想", "请", "能", "可以", "怎么", "什么", "怎样", "如何", "一下",
))
_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    """A light English stem: 'cards', 'carded', 'carding' -> 'card'."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def features(normalized: str) -> Counter[str]:
    """Chinese runs give characters and character pairs; other words give the word, its
    stem, its character trigrams and pairs of neighbouring content words. Function words
    get their own `s:` grams, weighted down."""
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
    score: float  # 0..100: the best question's; the thresholds compare this
    question: str  # the example question that matched best
    cosine: float
    edit: float
    support: float  # the rank: the score plus a little of the entry's next two questions


@dataclass(frozen=True, slots=True)
class MatchResult:
    query: str
    candidates: tuple[Candidate, ...]  # best first, one per entry

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def runner_up(self) -> Candidate | None:
        return self.candidates[1] if len(self.candidates) > 1 else None


class Matcher:
    def __init__(self, entries: Sequence[Entry]) -> None:
        self._questions: list[tuple[Entry, str, str]] = []  # entry, original, normalised
        for entry in entries:
            for question in entry.questions:
                self._questions.append((entry, question, normalize(question)))
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
            * (STOPWORD_FACTOR if g.startswith("s:") else 1.0)
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

    def match(self, text: str, limit: int = 3, exclude_self: bool = False) -> MatchResult:
        """The best entries for `text`. With `exclude_self`, a question written exactly like
        `text` is left out: how the knowledge base sees one of its own examples."""
        query = normalize(text)
        if not query or not self._questions:
            return MatchResult(query, ())
        query_weights = self._weights(features(query))
        found = self._similarities(query_weights)
        if found is None:
            return MatchResult(query, ())
        cosine, covered = found
        coverage = covered / sum(query_weights.values())
        first = COSINE_WEIGHT * np.minimum(cosine, 1.0) + COVERAGE_WEIGHT * coverage
        count = min(RESCORE_CANDIDATES + exclude_self, len(first))
        shortlist = np.argpartition(-first, count - 1)[:count]
        by_entry: dict[str, list[Candidate]] = {}
        for index in shortlist.tolist():
            entry, question, norm = self._questions[index]
            if cosine[index] <= 0 or (exclude_self and norm == query):
                continue
            edit = max(fuzz.ratio(query, norm), fuzz.token_sort_ratio(query, norm))
            score = round(100.0 * float(first[index]) + EDIT_WEIGHT * edit, 1)
            by_entry.setdefault(entry.id, []).append(Candidate(
                entry, score, question, round(float(cosine[index]), 3), round(edit, 1), score))
        ranked = []
        for candidates in by_entry.values():
            candidates.sort(key=lambda c: -c.score)
            best = candidates[0]
            support = best.score + SUPPORT_WEIGHT * sum(c.score for c in candidates[1:3])
            ranked.append(Candidate(best.entry, best.score, best.question, best.cosine,
                                    best.edit, round(support, 1)))
        ranked.sort(key=lambda c: -c.support)
        return MatchResult(query, tuple(ranked[:limit]))
