"""Never guess: turn a match into answer, clarify or decline, by how sure the bot can be.

A raw score means different things in different knowledge bases (a large one with
look-alike entries scores everything high; Chinese paraphrases score lower than English
ones), so no score threshold fits them all. What does hold is the evidence in
`Evidence`: how well the best entry matches, by how much it leads the best other entry, and
whether the words and the meaning point the same way. A logistic model turns that into the
probability that the best entry is what the customer asked: the bot answers at
`matching.answer_confidence` or above, asks which was meant from `clarify_confidence`, and
otherwise says it cannot answer.

The coefficients below were fitted once by `python -m benchmarks calibrate` on material
that is never a test: the public data sets' training and validation splits (with whole
intents left out of the knowledge base, so their questions stand for what it does not
cover) and kefu's own development sets (benchmarks/sets/). They are part of kefu, the same
for every shop; the benchmarks judge them on the test splits and on held-out sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from bot.config import MatchingConfig
from knowledge_base.matcher import Candidate, Evidence, MatchResult

# Fitted by `python -m benchmarks calibrate` (benchmarks/calibrate.py); refit when the
# matcher's scores change.
HYBRID_COEFFICIENTS = {
    "lexical_best": 0.142, "lexical_lead": 1.521, "chinese": 0.118, "semantic_best": 2.19,
    "semantic_lead": 11.788, "combined_best": 1.78, "combined_lead": 4.372,
    "lexical_agrees": 0.656, "semantic_agrees": -0.198, "semantic_neighbours": 0.782,
    "intercept": -3.572,
}
LEXICAL_COEFFICIENTS = {
    "lexical_best": 4.621, "lexical_lead": 7.042, "chinese": 0.989, "intercept": -2.619,
}
# Options offered when asking which was meant: those scoring at least this share of the best.
CLARIFY_SHARE = 0.75


class Action(StrEnum):
    ANSWER = "answer"
    CLARIFY = "clarify"
    DECLINE = "decline"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    answer: Candidate | None = None  # with ANSWER
    options: tuple[Candidate, ...] = ()  # with CLARIFY: what to offer, best first
    confidence: float = 0.0


def features(evidence: Evidence) -> dict[str, float]:
    """The evidence as the numbers the coefficients weigh."""
    values = {"lexical_best": evidence.lexical_best, "lexical_lead": evidence.lexical_lead,
              "chinese": float(evidence.chinese)}
    if evidence.semantic_best is not None:
        values.update(semantic_best=evidence.semantic_best,
                      semantic_lead=evidence.semantic_lead,
                      combined_best=evidence.combined_best,
                      combined_lead=evidence.combined_lead,
                      lexical_agrees=float(evidence.lexical_agrees),
                      semantic_agrees=float(evidence.semantic_agrees),
                      semantic_neighbours=evidence.semantic_neighbours)
    return values


def confidence(evidence: Evidence) -> float:
    """The probability that the best entry is what was asked."""
    coefficients = HYBRID_COEFFICIENTS if evidence.semantic_best is not None \
        else LEXICAL_COEFFICIENTS
    z = coefficients["intercept"] + sum(coefficients[name] * value
                                        for name, value in features(evidence).items())
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def decide(result: MatchResult, matching: MatchingConfig) -> Decision:
    """Answer when sure enough; offer the close candidates when less sure; else decline."""
    best = result.best
    if best is None or result.evidence is None:
        return Decision(Action.DECLINE, "nothing in the knowledge base is like this")
    sure = confidence(result.evidence)
    shown = f"confidence {sure:.2f}"
    if sure >= matching.answer_confidence:
        return Decision(Action.ANSWER, f"{shown} >= answer_confidence "
                        f"{matching.answer_confidence:g}", answer=best, confidence=sure)
    if sure >= matching.clarify_confidence:
        options = tuple(c for c in result.candidates[:matching.max_clarify_options]
                        if c.score >= CLARIFY_SHARE * best.score)
        return Decision(Action.CLARIFY, f"{shown} between clarify_confidence "
                        f"{matching.clarify_confidence:g} and answer_confidence "
                        f"{matching.answer_confidence:g}", options=options, confidence=sure)
    return Decision(Action.DECLINE, f"{shown} below clarify_confidence "
                    f"{matching.clarify_confidence:g}", confidence=sure)
