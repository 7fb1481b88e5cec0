"""Never guess: turn a match into answer, clarify or decline."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.config import MatchingConfig
from knowledge_base.matcher import Candidate, MatchResult


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


def decide(result: MatchResult, matching: MatchingConfig) -> Decision:
    """Answer only a clear winner above the answer threshold; offer the close candidates
    in the middle band (or when the top two are nearly tied); otherwise decline."""
    best, runner_up = result.best, result.runner_up
    if best is None:
        return Decision(Action.DECLINE, "nothing in the knowledge base is like this")
    tied = runner_up is not None and best.score - runner_up.score < matching.clarify_margin
    if best.score >= matching.answer_threshold and not tied:
        return Decision(Action.ANSWER, f"score {best.score:g} >= answer threshold "
                        f"{matching.answer_threshold:g}", answer=best)
    if best.score >= matching.clarify_threshold:
        options = tuple(c for c in result.candidates if c.score >= matching.clarify_threshold)
        why = (f"top two within {matching.clarify_margin:g} points" if tied and
               best.score >= matching.answer_threshold else
               f"score {best.score:g} between {matching.clarify_threshold:g} and "
               f"{matching.answer_threshold:g}")
        return Decision(Action.CLARIFY, why, options=options)
    return Decision(Action.DECLINE, f"score {best.score:g} below clarify threshold "
                    f"{matching.clarify_threshold:g}")
