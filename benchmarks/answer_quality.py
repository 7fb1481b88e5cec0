"""Answer quality: what customers get from the shipped configuration, on every data set.

A customer sees the bot's action, not its ranking. Each test question ends one of four ways
(shares of all test questions): answered right, answered wrong, clarified (the bot asked
which question was meant; "with the right one" when the right entry was among the options),
or declined (it said it could not answer, or handed over). Questions the knowledge base
does not cover ("out of scope") should never be answered.

ONE configuration for every data set: config.yaml as shipped. Beside it, in the same run,
kefu's lexical engine alone (`matching.engine: lexical`) and a plain baseline: the nearest
example by `rapidfuzz.fuzz.WRatio` (`process.extractOne`), answering at 90 or more.

Data (read in place from the folder given, never copied into kefu):
- BANKING77 (Casanueva et al. 2020, CC BY 4.0): online-banking questions, 77 intents.
- CLINC150 (Larson et al. 2019, CC BY 3.0): 150 intents in 10 domains plus out-of-scope
  queries: the test of "never guess".
- xSID Chinese (van der Goot et al. 2021, CC BY-SA 4.0): virtual-assistant queries
  translated to Chinese; an intent only in the test split stands for "not in the FAQ".
- kefu's development sets (benchmarks/sets/, MIT): a Chinese and an English shop FAQ as
  staff write one, and customers' messages as they type them (typos, chatter, traditional
  characters, hard out-of-scope questions). Further sets in the same format, such as
  held-out ones kept outside the repository, are read with `--sets FOLDER`.

For the public sets, a knowledge base has one entry per intent whose example questions are
the training texts (all of them, or 10 per intent drawn with a fixed seed), and whose
answer is the intent's name in words ("card arrival"): the nearest thing they have to an
FAQ's answer text.
"""

from __future__ import annotations

import csv
import json
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from rapidfuzz import fuzz, process

from bot.config import Config, load_config
from bot.progress import progress
from bot.understanding import Intent, Reader, reader_for
from knowledge_base.base import KnowledgeBase
from knowledge_base.decide import Action
from knowledge_base.loader import Entry

PROJECT = Path(__file__).resolve().parent.parent
SETS = Path(__file__).resolve().parent / "sets"
SEED = 0
SHOTS = 10
BASELINE_CUTOFF = 90.0  # WRatio at or above: the baseline answers
OUT_OF_SCOPE = "oos"

Example = tuple[str, str]  # text, intent (or OUT_OF_SCOPE)


@dataclass
class DataSet:
    name: str
    kb: str  # what the knowledge base is made of
    lang: str  # the customers' language
    entries: list[Entry]
    queries: list[Example]

    @property
    def questions(self) -> int:
        return sum(len(e.questions) for e in self.entries)


@dataclass
class Outcomes:
    right: int = 0
    wrong: int = 0
    clarified: int = 0
    clarified_with_right: int = 0  # the right entry among the options offered
    declined: int = 0
    in_scope: int = 0
    in_scope_right: int = 0
    out_of_scope: int = 0
    out_of_scope_answered: int = 0
    top1: int = 0  # a diagnostic: the right entry ranked first

    def add(self, action: str, answer: str | None, options: Sequence[str], ranked: str | None,
            truth: str) -> None:
        if truth == OUT_OF_SCOPE:
            self.out_of_scope += 1
            self.out_of_scope_answered += action == "answer"
        else:
            self.in_scope += 1
            self.top1 += ranked == truth
        if action == "answer":
            if answer == truth:
                self.right += 1
                self.in_scope_right += 1
            else:
                self.wrong += 1
        elif action == "clarify":
            self.clarified += 1
            self.clarified_with_right += truth in options
        else:
            self.declined += 1

    @property
    def total(self) -> int:
        return self.right + self.wrong + self.clarified + self.declined

    def share(self, count: int) -> float:
        return count / max(self.total, 1)


@dataclass
class Report:
    data: DataSet
    kefu: Outcomes
    lexical: Outcomes
    baseline: Outcomes
    seconds: float
    configuration: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def readable(intent: str) -> str:
    return intent.replace("_", " ").replace("/", " ")


def entries_of(examples: Sequence[Example], answers: dict[str, str] | None = None,
               lang: str | None = None) -> list[Entry]:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in examples:
        by_intent[intent].append(text)
    return [Entry(id=intent, questions=tuple(dict.fromkeys(texts)),
                  answer=(answers or {}).get(intent, readable(intent)), tags=(), lang=lang,
                  handoff=False, source=intent)
            for intent, texts in by_intent.items()]


def few_shot(examples: Sequence[Example], shots: int) -> list[Example]:
    rng = random.Random(SEED)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in examples:
        by_intent[intent].append(text)
    return [(text, intent) for intent, texts in sorted(by_intent.items())
            for text in rng.sample(texts, min(shots, len(texts)))]


class Baseline:
    """The nearest example by WRatio: what a quick FAQ bot does."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self._texts = [q for e in entries for q in e.questions]
        self._intents = [e.id for e in entries for _ in e.questions]

    def match(self, text: str) -> tuple[str, float]:
        found = process.extractOne(text, self._texts, scorer=fuzz.WRatio)
        if found is None:
            return "", 0.0
        _, score, index = found
        return self._intents[index], float(score)


def outcome(reader: Reader, kb: KnowledgeBase, text: str, lang: str
            ) -> tuple[str, str | None, tuple[str, ...], str | None]:
    """What the bot does with one message: action, answer, options, top-ranked entry."""
    reading = reader.read(kb, text, lang)
    if reading.intent is not Intent.QUESTION or reading.decision is None \
            or reading.result is None:
        return "decline", None, (), None  # handed over, small talk: not an answer
    decision = reading.decision
    best = reading.result.best
    answer = decision.answer.entry.id if decision.answer else None
    return (decision.action.value if decision.action is not Action.DECLINE else "decline",
            answer, tuple(c.entry.id for c in decision.options),
            best.entry.id if best else None)


def evaluate(data: DataSet, shipped: Reader, lexical: Reader) -> Report:
    started = time.monotonic()
    kb = KnowledgeBase.build(data.entries, vectors=shipped.vectors())
    plain_kb = KnowledgeBase.build(data.entries)
    baseline = Baseline(data.entries)
    kefu, words, plain = Outcomes(), Outcomes(), Outcomes()
    for text, truth in progress(data.queries, len(data.queries), f"{data.name} {data.kb}"):
        kefu.add(*outcome(shipped, kb, text, data.lang), truth)
        words.add(*outcome(lexical, plain_kb, text, data.lang), truth)
        intent, score = baseline.match(text)
        plain.add("answer" if score >= BASELINE_CUTOFF else "decline", intent, (), intent,
                  truth)
    return Report(data, kefu, words, plain, time.monotonic() - started)


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


def yaml_set(path: Path) -> tuple[str, str, list[Entry], list[Example]]:
    """A set in benchmarks/sets/ form: name, lang, entries (as a shop writes them), queries
    with the entry each should get or `none`."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    lang = data["lang"]
    entries = [Entry(id=e["id"], questions=tuple(e["questions"]), answer=e["answer"],
                     tags=(), lang=lang, handoff=False, source=f"{path.name}:{e['id']}")
               for e in data["entries"]]
    queries = [(q["text"], OUT_OF_SCOPE if q["expect"] == "none" else q["expect"])
               for q in data["queries"]]
    return data.get("name", path.stem), lang, entries, queries


def public_sets(folder: Path) -> Iterator[DataSet]:
    train, test = banking77(folder)
    yield DataSet("BANKING77", "full training set", "en", entries_of(train), test)
    yield DataSet("BANKING77", f"{SHOTS} per intent", "en", entries_of(few_shot(train, SHOTS)),
                  test)
    clinc = clinc150(folder)
    yield DataSet("CLINC150", "full training set", "en", entries_of(clinc["train"]),
                  clinc["test"] + clinc["oos_test"])
    train, test = xsid_zh(folder)
    yield DataSet("xSID zh", "validation split", "zh", entries_of(train), test)


def own_sets(folders: Sequence[Path]) -> Iterator[DataSet]:
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            name, lang, entries, queries = yaml_set(path)
            where = "dev" if folder == SETS else f"held out ({folder})"
            yield DataSet(path.stem, f"{name} [{where}]", lang, entries, queries)


def shipped_config() -> Config:
    return load_config(PROJECT / "config.yaml")


def readers(config: Config, cache: Path) -> tuple[Reader, Reader]:
    """The shipped reader (its vectors cached in `cache` for this run) and its lexical twin."""
    shipped = replace_matching(config, vector_cache=cache)
    return reader_for(shipped), reader_for(replace_matching(config, engine="lexical"))


def replace_matching(config: Config, **changes: object) -> Config:
    return config.model_copy(update={"matching": config.matching.model_copy(update=changes)})


def run_all(folder: Path, extra_sets: Sequence[Path] = ()) -> list[Report]:
    config = shipped_config()
    shown = (f"config.yaml as shipped: engine {config.matching.engine} "
             f"({config.matching.model}), answer_confidence "
             f"{config.matching.answer_confidence:g}, clarify_confidence "
             f"{config.matching.clarify_confidence:g}")
    with tempfile.TemporaryDirectory() as cache:
        shipped, lexical = readers(config, Path(cache))
        return [replace(evaluate(data, shipped, lexical), configuration=shown)
                for data in (*public_sets(folder), *own_sets([SETS, *extra_sets]))]
