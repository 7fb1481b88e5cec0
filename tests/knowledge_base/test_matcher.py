"""Matching: normalised, fuzzy, in Chinese and English, and honest about doubt."""

from __future__ import annotations

import pytest

from bot.config import MatchingConfig
from bot.text import normalize
from knowledge_base import vocabulary
from knowledge_base.decide import Action, decide
from knowledge_base.loader import Entry
from knowledge_base.matcher import Matcher


def entry(entry_id: str, *questions: str) -> Entry:
    return Entry(entry_id, questions, "answer", (), None, False, "test.yaml:1")


ENTRIES = [
    entry("return", "退货怎么办", "可以退货吗"),
    entry("refund", "退款多久到账", "什么时候退款"),
    entry("invoice", "怎么开发票", "可以开发票吗"),
    entry("hours-en", "what are your opening hours", "when are you open"),
    entry("shipping-en", "how much is shipping", "is shipping free"),
]
MATCHER = Matcher(ENTRIES)
READING = Matcher(ENTRIES, vocabulary.load(None))  # with kefu's vocabulary, as the bot reads


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("ＲＥＴＵＲＮ  Policy？", "return policy"), ("退货，怎么办！", "退货 怎么办"),
     ("  a\t\nb ", "a b"), ("１２３", "123"),
     ("我 想 退货 ， 可以 吗", "我想退货 可以吗"), ("退货 return 怎么办", "退货 return 怎么办")],
)
def test_normalize(raw: str, normalised: str) -> None:
    assert normalize(raw) == normalised


@pytest.mark.parametrize(
    ("query", "entry_id"),
    [("退货怎么办？", "return"), ("ＷＨＡＴ ARE YOUR OPENING HOURS", "hours-en"),
     ("退款多久能到账", "refund"), ("how much is shiping", "shipping-en"),
     ("我想开发票", "invoice")],
)
def test_best_match(query: str, entry_id: str) -> None:
    best = MATCHER.match(query).best
    assert best is not None and best.entry.id == entry_id


def test_exact_question_scores_100_and_runner_up_is_another_entry() -> None:
    result = MATCHER.match("退货怎么办")
    assert result.best is not None and result.best.score == 100.0
    assert result.runner_up is not None and result.runner_up.entry.id != "return"


def test_one_candidate_per_entry() -> None:
    result = MATCHER.match("可以退货吗 退货怎么办", limit=5)
    ids = [c.entry.id for c in result.candidates]
    assert len(ids) == len(set(ids))


def test_short_entries_do_not_match_anything() -> None:
    short = Matcher([entry("hi", "hi"), entry("refund", "when will I get my refund")])
    result = short.match("hi, my order never arrived and I want to know what happened")
    assert decide(result, MatchingConfig()).action is not Action.ANSWER


@pytest.mark.parametrize("query", ["", "？？？", "   "])
def test_nothing_to_match(query: str) -> None:
    result = MATCHER.match(query)
    assert result.candidates == ()
    assert decide(result, MatchingConfig()).action is Action.DECLINE


def test_the_bands_answer_clarify_and_decline_by_confidence() -> None:
    matching = MatchingConfig()
    sure = decide(MATCHER.match("退货怎么办"), matching)
    assert sure.action is Action.ANSWER and sure.confidence >= matching.answer_confidence
    assert decide(MATCHER.match("明天会下雨吗"), matching).action is Action.DECLINE
    unsure = decide(MATCHER.match("退"), matching)
    assert unsure.action is Action.CLARIFY
    assert {c.entry.id for c in unsure.options} == {"return", "refund"}
    # The same match, with the bar set higher, is only clarified.
    stricter = decide(MATCHER.match("退货怎么办"), MatchingConfig(answer_confidence=1.0))
    assert stricter.action is Action.CLARIFY


def test_a_near_tie_asks_instead_of_answering() -> None:
    tied = Matcher([entry("a", "order status"), entry("b", "order status please")])
    decision = decide(tied.match("order status pls"), MatchingConfig())
    assert decision.action is Action.CLARIFY
    assert {c.entry.id for c in decision.options} == {"a", "b"}


@pytest.mark.parametrize(
    ("query", "entry_id"),
    [("退貨怎麼辦", "return"),  # traditional characters
     ("推款多久到帐", "refund"),  # homophones typed with a pinyin IME
     ("咋开发票", "invoice"),  # a colloquial word, from the vocabulary
     ("你好，请问一下可以退货吗？😊", "return"),  # chatter and an emoji around it
     ("可以 退货 吗", "return")],  # spaces between the words, as some type or dictate
)
def test_chinese_as_customers_type_it(query: str, entry_id: str) -> None:
    result = READING.match(query)
    assert result.best is not None and result.best.entry.id == entry_id
    assert decide(result, MatchingConfig()).action is Action.ANSWER
