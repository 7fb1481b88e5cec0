"""What `kefu kb check` finds beyond broken files: edits that would make the bot answer
wrongly.

- Conflicts: an example question that, left out, the bot would answer with another entry:
  customers asking something like it would get that entry's answer.
- Near-duplicates: two entries with practically the same answer, or most of whose questions
  point to each other; one of them should go.
- Regressions: a file staff grow, each line a question and what the bot must do with it
  (an entry's id, `decline`, `handoff` or `small_talk`); an edit that breaks one is refused,
  by `kefu kb check` and by the running bot's reload alike. They are read exactly as the
  bot reads a customer's message (bot/understanding.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from rapidfuzz import fuzz

from bot.errors import KnowledgeBaseError
from bot.text import normalize
from knowledge_base.base import KnowledgeBase
from knowledge_base.decide import Action, decide

if TYPE_CHECKING:
    from bot.understanding import Reader, Reading

DECLINE = "decline"
OUTCOMES = (DECLINE, "handoff", "small_talk")  # what a regression may expect besides an id
SAME_ANSWER_RATIO = 90  # answers this alike (rapidfuzz ratio, normalised) are the same
SHARED_QUESTIONS = 0.5  # entries whose questions point to each other this much are one


@dataclass(frozen=True, slots=True)
class Finding:
    where: str  # file:line
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}; fix: {self.fix}"


def conflicts(kb: KnowledgeBase, reader: Reader) -> list[Finding]:
    findings = []
    vectors = reader.vectors()
    for entry in kb.entries:
        for question in entry.questions:
            result = reader.match(kb, question, entry.lang, exclude_self=True, vectors=vectors)
            decision = decide(result, reader.matching)
            other = decision.answer
            if decision.action is not Action.ANSWER or other is None \
                    or other.entry.id == entry.id:
                continue
            findings.append(Finding(
                entry.source,
                f"without its own example, {question!r} would be answered by entry "
                f"{other.entry.id!r} ({other.entry.source}, score {other.score:g} via "
                f"{other.question!r}), so customers asking something like it get that answer",
                f"move it to {other.entry.id!r} if it asks the same, or reword it with what "
                f"makes it {entry.id!r}"))
    return findings


def near_duplicates(kb: KnowledgeBase, reader: Reader) -> list[Finding]:
    findings = []
    vectors = reader.vectors()
    entries = list(kb.entries)
    for i, first in enumerate(entries):
        for second in entries[i + 1:]:
            if fuzz.ratio(normalize(first.answer), normalize(second.answer)) \
                    >= SAME_ANSWER_RATIO:
                findings.append(Finding(
                    second.source, f"entry {second.id!r} has practically the same answer as "
                    f"{first.id!r} ({first.source})",
                    f"merge their questions into {first.id!r} and delete {second.id!r}"))
    for entry in entries:
        pointing: Counter[str] = Counter()
        for question in entry.questions:
            decision = decide(reader.match(kb, question, entry.lang, exclude_self=True,
                                           vectors=vectors), reader.matching)
            if decision.action is Action.ANSWER and decision.answer is not None \
                    and decision.answer.entry.id != entry.id:
                pointing[decision.answer.entry.id] += 1
        for other, count in pointing.items():
            if len(entry.questions) > 1 and count / len(entry.questions) >= SHARED_QUESTIONS:
                findings.append(Finding(
                    entry.source, f"{count} of the {len(entry.questions)} questions of "
                    f"{entry.id!r} are answered as well by {other!r}",
                    f"if they ask the same thing, merge the two entries; if not, make the "
                    f"questions of {entry.id!r} say what is different"))
    return findings


@dataclass(frozen=True, slots=True)
class Expectation:
    question: str
    expect: str  # an entry id, or "decline"
    where: str


def load_regressions(path: Path) -> list[Expectation]:
    """The regression file: a list of `{question, expect}`; KnowledgeBaseError lists every
    problem in it with file:line. No file: nothing to check."""
    if not path.exists():
        return []
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise KnowledgeBaseError([f"{path.name}{f':{mark.line + 1}' if mark else ''}: "
                                  f"not valid YAML: {getattr(exc, 'problem', None) or exc}"]
                                 ) from None
    if root is None:
        return []
    if not isinstance(root, yaml.SequenceNode):
        raise KnowledgeBaseError([f"{path.name}:1: expected a list of "
                                  "{question: ..., expect: entry-id or decline}"])
    expectations, problems = [], []
    for node in root.value:
        where = f"{path.name}:{node.start_mark.line + 1}"
        fields = {str(k.value): v.value for k, v in node.value
                  if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)} \
            if isinstance(node, yaml.MappingNode) else {}
        question, expect = str(fields.get("question", "")).strip(), \
            str(fields.get("expect", "")).strip()
        if not question or not expect:
            problems.append(f"{where}: each line needs question and expect (an entry id, or "
                            f"one of {', '.join(OUTCOMES)})")
            continue
        expectations.append(Expectation(question, expect, where))
    if problems:
        raise KnowledgeBaseError(problems)
    return expectations


def regressions(kb: KnowledgeBase, expectations: list[Expectation], reader: Reader,
                lang: str) -> list[Finding]:
    """Each expectation against what the bot would do with its question, in a conversation
    in `lang` (the business's default language) so far."""
    known = {e.id for e in kb.entries}
    findings = []
    vectors = reader.vectors()  # a reload needs no model when nothing new is asked
    for expected in expectations:
        if expected.expect not in OUTCOMES and expected.expect not in known:
            findings.append(Finding(expected.where, f"expects entry {expected.expect!r}, "
                                    "which does not exist (any more)",
                                    f"fix the id, or the knowledge base (or expect one of "
                                    f"{', '.join(OUTCOMES)})"))
            continue
        reading = reader.read(kb, expected.question, lang, vectors)
        got = reading.outcome
        if got != expected.expect:
            findings.append(Finding(
                expected.where, f"{expected.question!r} should {_doing(expected.expect)}, "
                f"but the bot would {_doing(got, reading)}",
                "undo the edit that changed it, or add the question to the entry it belongs "
                "to"))
    return findings


def _doing(outcome: str, reading: Reading | None = None) -> str:
    if outcome == DECLINE:
        decision = reading.decision if reading is not None else None
        return f"not answer ({decision.action.value}: {decision.reason})" \
            if decision is not None else "not answer"
    return {"handoff": "hand over to a person", "small_talk": "reply as to small talk"}.get(
        outcome, f"answer with {outcome!r}")


def check(kb: KnowledgeBase, regressions_file: Path, reader: Reader, lang: str
          ) -> KnowledgeBase:
    """The reload's gate: `kb`, if the regression file holds for it."""
    failed = regressions(kb, load_regressions(regressions_file), reader, lang)
    if failed:
        raise KnowledgeBaseError([str(f) for f in failed])
    return kb
