"""How customers write: synonyms, filler and small talk, from kefu's file and the shop's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import KnowledgeBaseError
from bot.text import normalize
from knowledge_base import vocabulary
from knowledge_base.base import KnowledgeBase
from tests.conftest import TEST_KB
from tests.harness import write_kb

SHIPPED = vocabulary.load(None)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("你好", "greeting"), ("您好！", "greeting"), ("hi there", "greeting"),
     ("在吗？", "presence"), ("有人在吗", "presence"), ("are you there?", "presence"),
     ("谢谢", "thanks"), ("謝謝！", "thanks"), ("thank you so much!!", "thanks"),
     ("thx 🙏", "thanks"), ("好的，谢谢", "thanks"), ("拜拜", "goodbye"), ("bye", "goodbye"),
     ("好的", "acknowledge"), ("OK", "acknowledge"), ("嗯嗯", "acknowledge")],
)
def test_small_talk_is_recognised_in_both_languages(text: str, kind: str) -> None:
    assert SHIPPED.small_talk_kind(normalize(text)) == kind


@pytest.mark.parametrize("text", ["你好，请问怎么退货", "谢谢，发票怎么开", "hi, where is my order",
                                  "好的那运费多少", "ok so how do I cancel"])
def test_a_question_with_small_talk_around_it_is_a_question(text: str) -> None:
    assert SHIPPED.small_talk_kind(normalize(text)) is None


def test_filler_is_left_out_and_synonyms_are_read_as_one_word() -> None:
    assert SHIPPED.for_matching(normalize("你好，请问一下咋退货呀？")) == "怎么退货呀"
    assert SHIPPED.for_matching(normalize("hi there, where's my pkg pls")) == \
        "where is my parcel"
    # English variants are whole words only: the u in "but" stays.
    assert SHIPPED.for_matching(normalize("but u said")) == "but you said"


def test_a_shops_file_adds_its_own_words(tmp_path: Path) -> None:
    kb = write_kb(tmp_path / "kb", {"robots.yaml": """\
lang: zh
entries:
  - id: robot-mop
    questions: [扫地机器人怎么换拖布]
    answer: 打开机身后盖，取下拖布支架即可更换。
  - id: return-policy
    questions: [可以退货吗]
    answer: 签收后 7 天内可以退货。
"""})
    shop = tmp_path / "vocabulary.yaml"
    shop.write_text("synonyms:\n  - [扫地机器人, 扫地机, 小满扫拖一体机]\n"
                    "small_talk:\n  thanks: [感恩]\n", encoding="utf-8")
    without = KnowledgeBase.load(kb).matcher.match("小满扫拖一体机怎么换拖布").best
    with_words = KnowledgeBase.load(kb, shop)
    best = with_words.matcher.match("小满扫拖一体机怎么换拖布").best
    assert best is not None and best.entry.id == "robot-mop"
    assert without is None or best.score > without.score
    assert with_words.vocabulary.small_talk_kind("感恩") == "thanks"
    assert with_words.vocabulary.small_talk_kind("谢谢") == "thanks"  # kefu's words stay


def test_a_broken_vocabulary_file_names_every_problem(tmp_path: Path) -> None:
    kb = write_kb(tmp_path / "kb", TEST_KB)
    shop = tmp_path / "vocabulary.yaml"
    shop.write_text("synonyms:\n  - [only-one]\n  - 怎么\nsmall_talk:\n  jokes: [哈哈]\n"
                    "fillers: []\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError) as error:
        KnowledgeBase.load(kb, shop)
    problems = error.value.problems
    assert "vocabulary.yaml: unknown key 'fillers'" in problems[0]
    assert any("synonyms line 1: needs a word and at least one other" in p for p in problems)
    assert any("synonyms line 2: expected a list of words" in p for p in problems)
    assert any("unknown kind 'jokes'" in p for p in problems)
    shop.write_text("synonyms: [[a, b]\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError) as error:
        KnowledgeBase.load(kb, shop)
    assert error.value.problems[0].startswith("vocabulary.yaml:")
    assert "not valid YAML" in error.value.problems[0]
