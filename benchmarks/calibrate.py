"""`python -m benchmarks calibrate`: fit the confidence the bot decides by (decide.py).

Material that is never a test: the public data sets' training and validation splits, and
kefu's development sets. Out-of-scope questions come from CLINC150's validation split and
the development sets, and from whole intents left out of a knowledge base: their questions
are like the ones a real FAQ does not cover (close to what it covers, not random).

For each question the real matcher gives its `Evidence`; a logistic regression (Newton's
method, L2-penalised, each pool weighing the same) learns the probability that the best
entry is the right one. Printed as the dictionaries to paste into knowledge_base/decide.py.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from benchmarks import answer_quality as aq
from bot.progress import progress
from bot.understanding import Reader
from knowledge_base.base import KnowledgeBase
from knowledge_base.decide import features
from knowledge_base.loader import Entry
from knowledge_base.matcher import Evidence

SEED = 7
PENALTY = 0.01
Pool = tuple[str, list[Entry], list[aq.Example], bool]  # name, entries, queries, leave-one-out


def leave_out_intents(train: Sequence[aq.Example], queries: Sequence[aq.Example],
                      share: float, rng: random.Random
                      ) -> tuple[list[aq.Example], list[aq.Example]]:
    intents = sorted({i for _, i in train})
    gone = set(rng.sample(intents, max(1, int(len(intents) * share))))
    return ([(t, i) for t, i in train if i not in gone],
            [(t, aq.OUT_OF_SCOPE if i in gone else i) for t, i in queries])


def pools(folder: Path) -> Iterator[Pool]:
    rng = random.Random(SEED)
    train, _ = aq.banking77(folder)
    train = list(train)
    rng.shuffle(train)
    cut = len(train) // 10
    kb, queries = leave_out_intents(train[cut:], train[:cut], 0.15, rng)
    yield "BANKING77 train", aq.entries_of(kb), queries, False
    yield "BANKING77 train, 10 per intent", aq.entries_of(aq.few_shot(kb, aq.SHOTS)), queries, \
        False
    clinc = aq.clinc150(folder)
    kb, queries = leave_out_intents(clinc["train"], clinc["val"], 0.1, rng)
    yield "CLINC150 train + validation", aq.entries_of(kb), queries + clinc["oos_val"], False
    train, _ = aq.xsid_zh(folder)
    kb, queries = leave_out_intents(train, train, 0.15, rng)
    yield "xSID zh validation, leave one out", aq.entries_of(kb), queries, True
    for data in aq.own_sets([aq.SETS]):
        yield data.name, data.entries, data.queries, False
        kept = rng.sample(data.entries, int(len(data.entries) * 0.8))
        ids = {e.id for e in kept}
        yield f"{data.name}, a fifth of the entries left out", kept, [
            (t, i if i in ids else aq.OUT_OF_SCOPE) for t, i in data.queries], False


def evidence(pool: Pool, reader: Reader, lexical: bool) -> tuple[np.ndarray, np.ndarray]:
    """The features of every question's best entry, and whether that entry was right."""
    name, entries, queries, loo = pool
    kb = KnowledgeBase.build(entries, vectors=None if lexical else reader.vectors())
    vectors = reader.vectors() if loo and not lexical else None
    rows, right = [], []
    engine = "lexical" if lexical else "hybrid"
    for text, truth in progress(queries, len(queries), f"{name} ({engine})"):
        result = reader.match(kb, text, None, exclude_self=loo, vectors=vectors,
                              lexical_first=False)
        if result.evidence is None or result.best is None:
            continue
        rows.append(list(features(result.evidence).values()))
        right.append(float(result.best.entry.id == truth))
    return np.array(rows), np.array(right)


def fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    design = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (weights * (p - y)) + PENALTY * beta
        hessian = (design * (weights * p * (1 - p))[:, None]).T @ design \
            + PENALTY * np.eye(len(beta))
        beta -= np.linalg.solve(hessian, gradient)
    return beta


def coefficients(folder: Path, reader: Reader, lexical: bool) -> dict[str, float]:
    xs, ys, ws = [], [], []
    for pool in pools(folder):
        x, y = evidence(pool, reader, lexical)
        xs.append(x)
        ys.append(y)
        ws.append(np.full(len(y), 1000 / max(len(y), 1)))
    beta = fit(np.vstack(xs), np.concatenate(ys), np.concatenate(ws))
    names = list(features(_example(lexical)))
    return {**{n: round(float(b), 3) for n, b in zip(names, beta, strict=False)},
            "intercept": round(float(beta[-1]), 3)}


def _example(lexical: bool) -> Evidence:
    return Evidence(0.0, 0.0, False) if lexical else Evidence(0.0, 0.0, False, 0.0)


def main(folder: Path) -> int:
    with tempfile.TemporaryDirectory() as cache:
        shipped, _ = aq.readers(aq.shipped_config(), Path(cache))
        hybrid = coefficients(folder, shipped, lexical=False)
        lexical = coefficients(folder, shipped, lexical=True)
    print(f"HYBRID_COEFFICIENTS = {hybrid}")
    print(f"LEXICAL_COEFFICIENTS = {lexical}")
    return 0
