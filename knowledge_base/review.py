"""What `kefu kb check` finds beyond broken files: edits that would make the bot answer
wrongly.

- Conflicts: an example question that, left out, the bot would answer with another entry:
  customers asking something like it would get that entry's answer.
- Near-duplicates: two entries with practically the same answer, or most of whose questions
  point to each other; one of them should go.
- Regressions: a file staff grow, each line a question and what the bot must do with it
  (an entry's id, or `decline`); an edit that breaks one is refused, by `kefu kb check`
  and by the running bot's reload alike.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml
from rapidfuzz import fuzz

from bot.config import MatchingConfig
from bot.errors import KnowledgeBaseError
from bot.text import normalize
from knowledge_base.base import KnowledgeBase
from knowledge_base.decide import Action, decide

DECLINE = "decline"
SAME_ANSWER_RATIO = 90  # answers this alike (rapidfuzz ratio, normalised) are the same
SHARED_QUESTIONS = 0.5  # entries whose questions point to each other this much are one


@dataclass(frozen=True, slots=True)
class Finding:
    where: str  # file:line
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}; fix: {self.fix}"


def conflicts(kb: KnowledgeBase, matching: MatchingConfig) -> list[Finding]:
    findings = []
    for entry in kb.entries:
        for question in entry.questions:
            result = kb.matcher.match(question, matching.max_clarify_options,
                                      exclude_self=True)
            decision = decide(result, matching)
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


def near_duplicates(kb: KnowledgeBase, matching: MatchingConfig) -> list[Finding]:
    findings = []
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
            decision = decide(kb.matcher.match(question, matching.max_clarify_options,
                                               exclude_self=True), matching)
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
            problems.append(f"{where}: each line needs question and expect (an entry id or "
                            f"{DECLINE})")
            continue
        expectations.append(Expectation(question, expect, where))
    if problems:
        raise KnowledgeBaseError(problems)
    return expectations


def regressions(kb: KnowledgeBase, expectations: list[Expectation],
                matching: MatchingConfig) -> list[Finding]:
    known = {e.id for e in kb.entries}
    findings = []
    for expected in expectations:
        if expected.expect != DECLINE and expected.expect not in known:
            findings.append(Finding(expected.where, f"expects entry {expected.expect!r}, "
                                    "which does not exist (any more)",
                                    "fix the id, or the knowledge base"))
            continue
        decision = decide(kb.matcher.match(expected.question, matching.max_clarify_options),
                          matching)
        got = decision.answer.entry.id if decision.action is Action.ANSWER and \
            decision.answer else DECLINE
        if got != expected.expect:
            did = f"answer with {got!r}" if got != DECLINE else \
                f"not answer ({decision.action.value}: {decision.reason})"
            findings.append(Finding(
                expected.where, f"{expected.question!r} should "
                f"{'be declined' if expected.expect == DECLINE else f'get {expected.expect!r}'}"
                f", but the bot would {did}",
                "undo the edit that changed it, or add the question to the entry it belongs "
                "to"))
    return findings


def load_checked(folder: Path, regressions_file: Path, matching: MatchingConfig
                 ) -> KnowledgeBase:
    """Load the folder and run the regression file against it: the reload's gate."""
    kb = KnowledgeBase.load(folder)
    failed = regressions(kb, load_regressions(regressions_file), matching)
    if failed:
        raise KnowledgeBaseError([str(f) for f in failed])
    return kb
