"""`kefu kb gaps`: what customers asked that the bot could not answer, grouped.

Questions are grouped by similarity (the matcher's own measure, each question linked to
those it scores at least `threshold` with), most asked first, each group with its examples
and the existing entry closest to it, so staff can add the question to that entry or write
a new one. A draft YAML file can be written to start from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.text import normalize
from knowledge_base.base import KnowledgeBase
from knowledge_base.loader import Entry
from knowledge_base.matcher import Candidate, Matcher

SAME_GAP_SCORE = 55.0  # two questions scoring this together ask the same thing
NEIGHBOURS = 50
EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Gap:
    asked: int  # how many times, all questions of the group
    examples: tuple[str, ...]  # most asked first
    closest: Candidate | None  # the existing entry nearest to the group


def group(questions: list[str], threshold: float = SAME_GAP_SCORE) -> list[Counter[str]]:
    """Groups of similar questions (as asked, with counts), the most asked group first."""
    asked: Counter[str] = Counter()
    spelling: dict[str, str] = {}  # normalised -> the most asked way of writing it
    for question in questions:
        key = normalize(question)
        if key:
            asked[key] += 1
            spelling.setdefault(key, question.strip())
    keys = list(asked)
    matcher = Matcher([Entry(str(i), (k,), "", (), None, False, "") for i, k in enumerate(keys)])
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, key in enumerate(keys):
        for candidate in matcher.match(key, NEIGHBOURS).candidates:
            if candidate.score >= threshold:
                parent[root(int(candidate.entry.id))] = root(i)
    groups: dict[int, Counter[str]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(root(i), Counter())[spelling[key]] = asked[key]
    return sorted(groups.values(), key=lambda g: (-sum(g.values()), min(g)))


def find_gaps(questions: list[str], kb: KnowledgeBase,
              threshold: float = SAME_GAP_SCORE) -> list[Gap]:
    gaps = []
    for members in group(questions, threshold):
        examples = tuple(q for q, _ in members.most_common(EXAMPLES))
        gaps.append(Gap(sum(members.values()), examples, kb.matcher.match(examples[0], 1).best))
    return gaps


def write_draft(gaps: list[Gap], path: Path) -> None:
    """Entries to review: the questions filled in, the answers to write."""
    entries = []
    for n, gap in enumerate(gaps, start=1):
        entries.append({"id": f"draft-{n}", "questions": list(gap.examples),
                        "answer": "TODO: write the answer"})
    header = ("# Drafted by `kefu kb gaps`: one entry per group of questions the bot could not\n"
              "# answer. Write the answers (or move the questions into the closest entry),\n"
              "# then put the entries in a file in the knowledge-base folder.\n")
    notes = "".join(
        f"# draft-{n}: asked {gap.asked} times; closest entry "
        f"{gap.closest.entry.id if gap.closest else '(none)'}"
        f"{f' (score {gap.closest.score:g})' if gap.closest else ''}\n"
        for n, gap in enumerate(gaps, start=1))
    path.write_text(header + notes + yaml.safe_dump({"entries": entries}, allow_unicode=True,
                                                   sort_keys=False), encoding="utf-8")
