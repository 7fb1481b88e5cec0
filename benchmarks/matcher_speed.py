"""Matching speed: knowledge bases of 100, 1,000 and 10,000 questions.

Index build time and match latency (p50, p99) for kefu's lexical engine and for what the
shipped configuration does with a question (the hybrid engine: words, then the model's
vector of the question unless the words are already sure, then the decision), and in the
same run for the baseline (`process.extractOne` with `fuzz.WRatio` over every question).
The hybrid build is timed twice: the first embeds every question; the second finds them in
the vector cache, as a restart or a reload does. Then a reload of the 10,000-question
knowledge base while answers keep being matched: the answers' latency during the reload,
against the same answers without one.

Questions come from CLINC150's training split (English) and xSID's Chinese sentences, so
both scripts are in the index; queries are CLINC150 test sentences.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rapidfuzz import fuzz, process

from benchmarks.answer_quality import clinc150, entries_of, xsid_zh
from benchmarks.stats import percentile
from bot.config import Config, load_config
from bot.progress import progress
from bot.understanding import Reader, reader_for
from knowledge_base.base import KnowledgeBase
from knowledge_base.live import LiveKnowledgeBase
from knowledge_base.matcher import Matcher

PROJECT = Path(__file__).resolve().parent.parent
SIZES = (100, 1_000, 10_000)
QUERIES = 1_000


@dataclass
class SpeedRow:
    questions: int
    build_seconds: float
    p50: float
    p99: float
    baseline_p50: float
    baseline_p99: float
    hybrid_cold_build: float  # embedding every question
    hybrid_warm_build: float  # every vector in the cache
    hybrid_p50: float
    hybrid_p99: float
    model_share: float  # of the questions, those the model was asked about


@dataclass
class ReloadRow:
    questions: int
    reload_seconds: float
    idle_p50: float
    idle_p99: float
    during_p50: float
    during_p99: float
    during_max: float
    answered_during: int


def _examples(folder: Path, size: int) -> list[tuple[str, str]]:
    clinc = clinc150(folder)["train"]
    chinese = xsid_zh(folder)[0]
    rng = random.Random(size)
    pool = list(dict.fromkeys(clinc + chinese))
    return rng.sample(pool, size)


def _latencies(match: object, queries: list[str], label: str) -> list[float]:
    timings = []
    for query in progress(queries, len(queries), label):
        started = time.perf_counter()
        match(query)  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return timings


def speed(folder: Path) -> list[SpeedRow]:
    queries = [t for t, _ in random.Random(1).sample(clinc150(folder)["test"], QUERIES)]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        reader = reader_for(shipped(Path(cache)))
        for size in SIZES:
            examples = _examples(folder, size)
            started = time.perf_counter()
            matcher = Matcher(entries_of(examples))
            build = time.perf_counter() - started
            kefu = _latencies(matcher.match, queries, f"kefu lexical, {size} questions")
            started = time.perf_counter()
            KnowledgeBase.build(entries_of(examples), vectors=reader.vectors())
            cold = time.perf_counter() - started
            started = time.perf_counter()
            hybrid_kb = KnowledgeBase.build(entries_of(examples), vectors=reader.vectors())
            warm = time.perf_counter() - started
            asked = _ModelCalls(reader)
            hybrid = _latencies(lambda q, kb=hybrid_kb: reader.read(kb, q, "en"), queries,
                                f"kefu shipped (hybrid), {size} questions")
            texts = [t for t, _ in examples]
            plain = _latencies(lambda q, texts=texts: process.extractOne(q, texts,
                                                                          scorer=fuzz.WRatio),
                               queries, f"WRatio baseline, {size} questions")
            rows.append(SpeedRow(size, build, percentile(kefu, 50), percentile(kefu, 99),
                                 percentile(plain, 50), percentile(plain, 99), cold, warm,
                                 percentile(hybrid, 50), percentile(hybrid, 99),
                                 asked.count / len(queries)))
            asked.stop()
    return rows


class _ModelCalls:
    """The shipped model, counting the questions it is asked about (the words decided the
    rest)."""

    def __init__(self, reader: Reader) -> None:
        assert reader.embedder is not None
        self._reader, self._model = reader, reader.embedder
        self.name = self._model.name
        self.count = 0
        reader.embedder = self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.count += len(texts)
        return self._model.embed(texts)

    def stop(self) -> None:
        self._reader.embedder = self._model


def shipped(cache: Path) -> Config:
    """config.yaml as shipped, its vectors cached in `cache`."""
    config = load_config(PROJECT / "config.yaml")
    return config.model_copy(update={"matching": config.matching.model_copy(
        update={"vector_cache": cache})})


def reload_while_answering(folder: Path) -> ReloadRow:
    """Answers go on (in threads, as the router runs them) while the folder reloads."""
    examples = _examples(folder, SIZES[-1])
    queries = [t for t, _ in random.Random(2).sample(clinc150(folder)["test"], 400)]
    with tempfile.TemporaryDirectory() as tmp:
        kb = Path(tmp)
        (kb / "faq.yaml").write_text(yaml.safe_dump({"entries": [
            {"id": f"e{i}", "questions": list(e.questions), "answer": "a"}
            for i, e in enumerate(entries_of(examples))]}, allow_unicode=True), encoding="utf-8")
        reader = reader_for(shipped(kb / "vectors"))
        live = LiveKnowledgeBase(kb, reader.load(kb, None), vocabulary=kb / "none.yaml",
                                 regressions=kb / "no-regressions.yaml", reader=reader,
                                 lang="zh")

        async def answer_all() -> list[float]:
            timings = []
            for query in queries:
                started = time.perf_counter()
                await asyncio.to_thread(reader.read, live.current, query, "en")
                timings.append(time.perf_counter() - started)
            return timings

        async def measure() -> tuple[list[float], list[float], float]:
            idle = await answer_all()
            (kb / "faq.yaml").touch()  # an edit: the watcher reloads
            started = time.perf_counter()
            reloading = asyncio.create_task(live.reload_if_changed())
            during: list[float] = []
            while not reloading.done():
                began = time.perf_counter()
                await asyncio.to_thread(reader.read, live.current, queries[len(during) % 400],
                                        "en")
                during.append(time.perf_counter() - began)
            await reloading
            return idle, during, time.perf_counter() - started

        idle, during, seconds = asyncio.run(measure())
    return ReloadRow(SIZES[-1], seconds, percentile(idle, 50), percentile(idle, 99),
                     percentile(during, 50), percentile(during, 99), max(during, default=0),
                     len(during))
