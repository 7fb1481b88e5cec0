"""Answer quality on public intent data sets, against a plain baseline in the same run.

Data (read in place from the folder given, never copied into kefu):
- BANKING77 (Casanueva et al. 2020, CC BY 4.0): online-banking questions, 77 intents.
- CLINC150 (Larson et al. 2019, CC BY 3.0): 150 intents in 10 domains plus out-of-scope
  queries: the test of "never guess".
- xSID Chinese (van der Goot et al. 2021, CC BY-SA 4.0): virtual-assistant queries
  translated to Chinese; an intent only in the test split stands for "not in the FAQ".

A knowledge base is built with one entry per intent whose example questions are the
training texts (all of them, or 10 per intent drawn with a fixed seed). The baseline is
what a quick FAQ bot does: the nearest example by `rapidfuzz.fuzz.WRatio` with
`process.extractOne`.

Outcomes, as shares of all test queries: answered correctly, answered wrongly, declined
(kefu asks which question was meant, or says it cannot answer). With CLINC150 the answer
threshold and the margin are chosen on the validation split only (in-scope and
out-of-scope): the most in-scope answers with few wrong answers. Choosing for at most 5%
wrong on validation gives about 5.5% on test (the test split is a little harder), so the
rule holds back 1.5 points: at most 3.5% wrong on validation. Both rows are reported.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz, process

from bot.config import MatchingConfig
from bot.progress import progress
from knowledge_base.decide import Action, decide
from knowledge_base.loader import Entry
from knowledge_base.matcher import Matcher, MatchResult

SEED = 0
SHOTS = 10
WRONG_TARGET = 0.05  # of all test queries
WRONG_ON_VALIDATION = 0.035  # the target less what the step from validation to test costs
OUT_OF_SCOPE = "oos"

Example = tuple[str, str]  # text, intent


@dataclass
class Outcomes:
    correct: int = 0
    wrong: int = 0
    declined: int = 0
    in_scope: int = 0
    in_scope_answered: int = 0
    out_of_scope: int = 0
    out_of_scope_declined: int = 0

    def add(self, answered: str | None, truth: str) -> None:
        if truth == OUT_OF_SCOPE:
            self.out_of_scope += 1
            self.out_of_scope_declined += answered is None
        else:
            self.in_scope += 1
            self.in_scope_answered += answered is not None
        if answered is None:
            self.declined += 1
        elif answered == truth:
            self.correct += 1
        else:
            self.wrong += 1

    @property
    def total(self) -> int:
        return self.correct + self.wrong + self.declined

    def share(self, count: int) -> float:
        return count / max(self.total, 1)


@dataclass
class Report:
    data: str
    kb: str
    questions: int
    top1: float
    baseline_top1: float
    kefu: Outcomes
    baseline: Outcomes
    thresholds: str
    seconds: float


def entries(examples: Sequence[Example]) -> list[Entry]:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in examples:
        by_intent[intent].append(text)
    return [Entry(id=intent, questions=tuple(dict.fromkeys(texts)), answer=intent, tags=(),
                  lang=None, handoff=False, source=intent)
            for intent, texts in by_intent.items()]


def few_shot(examples: Sequence[Example], shots: int) -> list[Example]:
    rng = random.Random(SEED)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in examples:
        by_intent[intent].append(text)
    return [(text, intent) for intent, texts in sorted(by_intent.items())
            for text in rng.sample(texts, min(shots, len(texts)))]


def answered(result: MatchResult, matching: MatchingConfig) -> str | None:
    decision = decide(result, matching)
    return decision.answer.entry.id if decision.action is Action.ANSWER and decision.answer \
        else None


class Baseline:
    """The nearest example by WRatio: what a quick FAQ bot does."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self._texts = [t for t, _ in examples]
        self._intents = [i for _, i in examples]

    def match(self, text: str) -> tuple[str, float]:
        found = process.extractOne(text, self._texts, scorer=fuzz.WRatio)
        if found is None:
            return "", 0.0
        _, score, index = found
        return self._intents[index], float(score)


def run(data: str, kb_name: str, train: Sequence[Example], test: Sequence[Example],
        matching: MatchingConfig, baseline_cutoff: float, thresholds: str,
        results: list[MatchResult] | None = None) -> Report:
    started = time.monotonic()
    matcher = Matcher(entries(train))
    baseline = Baseline(train)
    kefu, plain = Outcomes(), Outcomes()
    top1 = baseline_top1 = 0
    in_scope = [x for x in test if x[1] != OUT_OF_SCOPE]
    for text, truth in progress(test, len(test), f"{data} {kb_name}"):
        result = matcher.match(text, matching.max_clarify_options)
        if results is not None:
            results.append(result)
        top1 += truth != OUT_OF_SCOPE and result.best is not None \
            and result.best.entry.id == truth
        kefu.add(answered(result, matching), truth)
        intent, score = baseline.match(text)
        baseline_top1 += truth != OUT_OF_SCOPE and intent == truth
        plain.add(intent if score >= baseline_cutoff else None, truth)
    return Report(data, kb_name, sum(len(e.questions) for e in entries(train)),
                  top1 / max(len(in_scope), 1), baseline_top1 / max(len(in_scope), 1),
                  kefu, plain, thresholds, time.monotonic() - started)


def choose_thresholds(results: Sequence[tuple[MatchResult, str]], wrong_at_most: float
                      ) -> tuple[MatchingConfig, float]:
    """On the validation split only: the answer threshold and margin that answer the most
    in-scope queries with at most `wrong_at_most` of all queries answered wrongly."""
    best: tuple[float, MatchingConfig] | None = None
    for threshold in range(40, 100, 2):
        for margin in (0, 2, 4, 6, 8, 10, 12, 15, 20):
            config = MatchingConfig(answer_threshold=threshold, clarify_threshold=min(
                35, threshold), clarify_margin=margin)
            outcomes = Outcomes()
            for result, truth in results:
                outcomes.add(answered(result, config), truth)
            if outcomes.share(outcomes.wrong) <= wrong_at_most:
                rate = outcomes.in_scope_answered / outcomes.in_scope
                if best is None or rate > best[0]:
                    best = (rate, config)
    assert best is not None, f"no threshold keeps wrong answers under {wrong_at_most:.1%}"
    return best[1], best[0]


def choose_baseline_cutoff(examples: Sequence[Example], validation: Sequence[Example]
                           ) -> float:
    """The same rule for the baseline: its WRatio cutoff, chosen on validation."""
    baseline = Baseline(examples)
    scored = [(*baseline.match(text), truth) for text, truth in validation]
    best = (0.0, 101.0)
    for cutoff in range(50, 101, 2):
        outcomes = Outcomes()
        for intent, score, truth in scored:
            outcomes.add(intent if score >= cutoff else None, truth)
        if outcomes.share(outcomes.wrong) <= WRONG_ON_VALIDATION:
            rate = outcomes.in_scope_answered / outcomes.in_scope
            if rate > best[0]:
                best = (rate, float(cutoff))
    return best[1]


# the data sets

def banking77(folder: Path) -> tuple[list[Example], list[Example]]:
    def read(name: str) -> list[Example]:
        with (folder / "banking77" / name).open(encoding="utf-8") as f:
            return [(row["text"], row["category"]) for row in csv.DictReader(f)]

    return read("train.csv"), read("test.csv")


def clinc150(folder: Path) -> dict[str, list[Example]]:
    data = json.loads((folder / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    return {split: [(text, intent if not split.startswith("oos") else OUT_OF_SCOPE)
                     for text, intent in rows] for split, rows in data.items()}


def xsid_zh(folder: Path) -> tuple[list[Example], list[Example]]:
    def read(name: str) -> list[Example]:
        examples, text = [], ""
        for line in (folder / "xsid_zh" / name).read_text(encoding="utf-8").splitlines():
            if line.startswith("# text ="):
                text = line.split("=", 1)[1].strip()
            elif line.startswith("# intent ="):
                examples.append((text, line.split("=", 1)[1].strip()))
        return examples

    train, test = read("zh.valid.conll"), read("zh.test.conll")
    known = {intent for _, intent in train}  # unknown intents: not in the knowledge base
    return train, [(t, i if i in known else OUT_OF_SCOPE) for t, i in test]


def run_all(folder: Path) -> list[Report]:
    default = MatchingConfig()
    shown = (f"answer >= {default.answer_threshold:g}, clarify >= "
             f"{default.clarify_threshold:g}, margin {default.clarify_margin:g} (defaults)")
    reports = []
    train, test = banking77(folder)
    reports.append(run("BANKING77", "full training set", train, test, default, 90, shown))
    reports.append(run("BANKING77", f"{SHOTS} per intent", few_shot(train, SHOTS), test,
                       default, 90, shown))
    clinc = clinc150(folder)
    matcher = Matcher(entries(clinc["train"]))
    validation = clinc["val"] + clinc["oos_val"]
    scored = [(matcher.match(text, 3), truth)
              for text, truth in progress(validation, len(validation), "CLINC150 validation")]
    cutoff = choose_baseline_cutoff(clinc["train"], validation)
    for wrong_at_most in (WRONG_ON_VALIDATION, WRONG_TARGET):
        chosen, _ = choose_thresholds(scored, wrong_at_most)
        reports.append(run(
            "CLINC150", "full training set", clinc["train"],
            clinc["test"] + clinc["oos_test"], chosen, cutoff,
            f"answer >= {chosen.answer_threshold:g}, margin {chosen.clarify_margin:g}, "
            f"chosen on validation for <= {wrong_at_most:.1%} wrong (baseline: WRatio >= "
            f"{cutoff:g}, chosen the same way)"))
    train, test = xsid_zh(folder)
    reports.append(run("xSID zh", "validation split", train, test, default, 90, shown))
    return reports
