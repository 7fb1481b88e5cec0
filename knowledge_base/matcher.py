"""Fuzzy FAQ matching that can explain itself and knows when it is unsure.

Each example question is indexed by character n-grams weighted by inverse frequency (Chinese
needs no segmenter: single characters and pairs carry the meaning; English gets words and
character trigrams, which tolerate typos). A query's candidates come from the index by cosine
similarity; the best few are re-scored together with rapidfuzz's `ratio` and
`token_sort_ratio` on normalised text. `fuzz.WRatio` is deliberately not used: it lets short
questions match anything.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from rapidfuzz import fuzz

from bot.text import is_cjk, normalize
from knowledge_base.loader import Entry

# score = cosine, query coverage and edit similarity, weighted; each is 0..1 (edit 0..100).
COSINE_WEIGHT = 0.45
COVERAGE_WEIGHT = 0.25
EDIT_WEIGHT = 0.30
RESCORE_CANDIDATES = 30
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


def features(normalized: str) -> Counter[str]:
    """Chinese runs give characters and character pairs; other words give the word itself
    and its character trigrams. Function words get their own `s:` grams, weighted down."""
    grams: Counter[str] = Counter()
    for word in normalized.split(" "):
        if word in STOPWORDS:
            grams["s:" + word] += 1
            continue
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
    return grams


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: Entry
    score: float  # 0..100
    question: str  # the example question that matched best
    cosine: float
    edit: float


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
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for index, grams in enumerate(counts):
            for gram, weight in self._weights(grams).items():
                self._postings[gram].append((index, weight))

    def _weights(self, grams: Counter[str]) -> dict[str, float]:
        weighted = {
            g: (1.0 + math.log(n)) * self._idf.get(g, self._unseen_idf)
            * (STOPWORD_FACTOR if g.startswith("s:") else 1.0)
            for g, n in grams.items()
        }
        norm = math.sqrt(sum(w * w for w in weighted.values())) or 1.0
        return {g: w / norm for g, w in weighted.items()}

    def match(self, text: str, limit: int = 3) -> MatchResult:
        query = normalize(text)
        if not query:
            return MatchResult(query, ())
        query_weights = self._weights(features(query))
        query_mass = sum(query_weights.values())
        similarity: dict[int, float] = defaultdict(float)
        covered: dict[int, float] = defaultdict(float)
        for gram, weight in query_weights.items():
            for index, question_weight in self._postings.get(gram, ()):
                similarity[index] += weight * question_weight
                covered[index] += weight
        shortlist = sorted(similarity.items(), key=lambda item: -item[1])[:RESCORE_CANDIDATES]
        best_per_entry: dict[str, Candidate] = {}
        for index, cosine in shortlist:
            entry, question, norm = self._questions[index]
            edit = max(fuzz.ratio(query, norm), fuzz.token_sort_ratio(query, norm))
            coverage = covered[index] / query_mass
            score = (100.0 * (COSINE_WEIGHT * min(cosine, 1.0) + COVERAGE_WEIGHT * coverage)
                     + EDIT_WEIGHT * edit)
            current = best_per_entry.get(entry.id)
            if current is None or score > current.score:
                best_per_entry[entry.id] = Candidate(entry, round(score, 1), question,
                                                     round(cosine, 3), round(edit, 1))
        ranked = sorted(best_per_entry.values(), key=lambda c: -c.score)
        return MatchResult(query, tuple(ranked[:limit]))
