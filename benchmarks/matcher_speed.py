"""Matching speed: knowledge bases of 100, 1,000 and 10,000 questions.

Index build time and match latency (p50, p99) for kefu's matcher, and in the same run for
the baseline (`process.extractOne` with `fuzz.WRatio` over every question). Then a reload
of the 10,000-question knowledge base while answers keep being matched: the answers'
latency during the reload, against the same answers without one.

Questions come from CLINC150's training split (English) and xSID's Chinese sentences, so
both scripts are in the index; queries are CLINC150 test sentences.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from rapidfuzz import fuzz, process

from benchmarks.answer_quality import clinc150, entries_of, xsid_zh
from benchmarks.stats import percentile
from bot.config import Config
from bot.progress import progress
from bot.understanding import reader_for
from knowledge_base.base import KnowledgeBase
from knowledge_base.live import LiveKnowledgeBase
from knowledge_base.matcher import Matcher

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
    for size in SIZES:
        examples = _examples(folder, size)
        started = time.perf_counter()
        matcher = Matcher(entries_of(examples))
        build = time.perf_counter() - started
        kefu = _latencies(matcher.match, queries, f"kefu matcher, {size} questions")
        texts = [t for t, _ in examples]
        plain = _latencies(lambda q, texts=texts: process.extractOne(q, texts,
                                                                      scorer=fuzz.WRatio),
                           queries, f"WRatio baseline, {size} questions")
        rows.append(SpeedRow(size, build, percentile(kefu, 50), percentile(kefu, 99),
                             percentile(plain, 50), percentile(plain, 99)))
    return rows


def reload_while_answering(folder: Path) -> ReloadRow:
    """Answers go on (in threads, as the router runs them) while the folder reloads."""
    examples = _examples(folder, SIZES[-1])
    queries = [t for t, _ in random.Random(2).sample(clinc150(folder)["test"], 400)]
    with tempfile.TemporaryDirectory() as tmp:
        kb = Path(tmp)
        (kb / "faq.yaml").write_text(yaml.safe_dump({"entries": [
            {"id": f"e{i}", "questions": list(e.questions), "answer": "a"}
            for i, e in enumerate(entries_of(examples))]}, allow_unicode=True), encoding="utf-8")
        live = LiveKnowledgeBase(kb, KnowledgeBase.load(kb), vocabulary=kb / "none.yaml",
                                 regressions=kb / "no-regressions.yaml",
                                 reader=reader_for(Config()), lang="zh")

        async def answer_all() -> list[float]:
            timings = []
            for query in queries:
                started = time.perf_counter()
                await asyncio.to_thread(live.current.matcher.match, query, 3)
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
                await asyncio.to_thread(live.current.matcher.match, queries[len(during) % 400], 3)
                during.append(time.perf_counter() - began)
            await reloading
            return idle, during, time.perf_counter() - started

        idle, during, seconds = asyncio.run(measure())
    return ReloadRow(SIZES[-1], seconds, percentile(idle, 50), percentile(idle, 99),
                     percentile(during, 50), percentile(during, 99), max(during, default=0),
                     len(during))
