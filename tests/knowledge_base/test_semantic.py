"""The semantic engine: the real multilingual model that ships with kefu, its vector cache,
and another model plugged in by name."""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.config import Config, MatchingConfig
from bot.understanding import reader_for
from knowledge_base.base import KnowledgeBase
from knowledge_base.decide import Action, decide
from knowledge_base.loader import Entry
from knowledge_base.semantic import UniversalSentenceEncoder, VectorCache
from tests.harness import write_kb


def entry(entry_id: str, lang: str, answer: str, *questions: str) -> Entry:
    return Entry(entry_id, questions, answer, (), lang, False, f"faq.yaml:{entry_id}")


ENTRIES = [
    entry("return-policy", "zh", "签收后 7 天内可以无理由退货。", "退货怎么办", "可以退货吗",
          "退货政策是什么"),
    entry("refund-time", "zh", "退款 1-3 个工作日原路退回。", "退款多久到账", "什么时候退款"),
    entry("delivery-time", "zh", "现货 24 小时内发货，一般 2-5 天送达。", "多久能发货",
          "快递几天到"),
    entry("invoice", "zh", "在订单详情点击“申请开票”。", "怎么开发票", "可以开发票吗"),
    entry("order-status-en", "en", "Open \"My orders\" to see the status and tracking.",
          "where is my order", "track my order"),
    entry("password-en", "en", "Use \"Forgot password\" on the sign-in page.",
          "I forgot my password", "how do I reset my password"),
    entry("shipping-fee-en", "en", "Shipping is free over 99 yuan.", "how much is shipping",
          "is shipping free"),
]
MODEL = UniversalSentenceEncoder()


class Counting:
    """The real model, noting every text it is asked to embed."""

    def __init__(self, name: str = MODEL.name) -> None:
        self.name = name
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return MODEL.embed(texts)


def ask(kb: KnowledgeBase, text: str, semantic: bool = True) -> tuple[Action, str | None]:
    lang = "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en"
    result = kb.matcher.match(text, 3, lang=lang,
                              query_vector=(lambda: MODEL.embed([text])[0]) if semantic
                              else None)
    decision = decide(result, MatchingConfig())
    return decision.action, result.best.entry.id if result.best else None


@pytest.fixture(scope="module")
def hybrid() -> KnowledgeBase:
    return KnowledgeBase.build(ENTRIES, vectors=VectorCache(None, MODEL))


@pytest.mark.parametrize(
    ("text", "entry_id"),
    [("i can't log in, lost my login details", "password-en"),
     ("能给我开个报销用的票吗", "invoice"),
     ("钱什么时候能回到我卡上", "refund-time")],
)
def test_a_question_in_other_words_is_answered_by_its_meaning(
    hybrid: KnowledgeBase, text: str, entry_id: str
) -> None:
    assert ask(hybrid, text) == (Action.ANSWER, entry_id)


def test_the_words_alone_would_not_have_answered(hybrid: KnowledgeBase) -> None:
    lexical = KnowledgeBase.build(ENTRIES)
    assert ask(lexical, "i can't log in, lost my login details", semantic=False)[0] \
        is not Action.ANSWER
    # Shared words mislead the words alone: "啥时候" is in the refund entry's "什么时候".
    assert ask(lexical, "东西啥时候能送到", semantic=False) == (Action.ANSWER, "refund-time")
    action, best = ask(hybrid, "东西啥时候能送到")
    assert best == "delivery-time" and action is not Action.DECLINE


@pytest.mark.parametrize("text", ["你们老板是谁", "what's the weather like", "帮我写一首诗"])
def test_what_the_faq_does_not_cover_is_not_answered(hybrid: KnowledgeBase, text: str) -> None:
    assert ask(hybrid, text)[0] is Action.DECLINE


def test_a_reload_embeds_only_what_changed(tmp_path: Path) -> None:
    model = Counting()
    KnowledgeBase.build(ENTRIES, vectors=VectorCache(tmp_path, model))
    assert len(model.embedded) == sum(len(e.questions) + 1 for e in ENTRIES)  # and answers
    edited = [*ENTRIES[:-1], entry("shipping-fee-en", "en", "Shipping is free over 99 yuan.",
                                   "how much is shipping", "do you charge for delivery")]
    model.embedded.clear()
    KnowledgeBase.build(edited, vectors=VectorCache(tmp_path, model))  # a new process's cache
    assert model.embedded == ["do you charge for delivery"]
    model.embedded.clear()
    KnowledgeBase.build(edited, vectors=VectorCache(tmp_path, model))
    assert model.embedded == []


def test_a_damaged_vector_file_is_embedded_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    KnowledgeBase.build(ENTRIES, vectors=VectorCache(tmp_path, MODEL))
    (tmp_path / f"{MODEL.name}.npz").write_bytes(b"not a numpy file")
    model = Counting()
    with caplog.at_level(logging.WARNING):
        kb = KnowledgeBase.build(ENTRIES, vectors=VectorCache(tmp_path, model))
    assert "unreadable" in caplog.text and model.embedded
    assert ask(kb, "能给我开个报销用的票吗") == (Action.ANSWER, "invoice")


class Bigrams:
    """A small model of one's own: character pairs hashed into 512 numbers."""

    name = "character-bigrams"

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(texts), 512), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            for first, second in itertools.pairwise(text):
                row[zlib.crc32((first + second).encode()) % 512] += 1.0
            row /= max(float(np.linalg.norm(row)), 1e-9)
        return rows


def test_another_model_is_plugged_in_by_name(tmp_path: Path) -> None:
    config = Config.model_validate({"matching": {
        "model": "tests.knowledge_base.test_semantic:Bigrams", "vector_cache": str(tmp_path)}})
    reader = reader_for(config)
    assert isinstance(reader.embedder, Bigrams)
    folder = write_kb(tmp_path / "kb", {"faq.yaml": (
        "lang: zh\nentries:\n"
        "  - {id: invoice, questions: [怎么开发票], answer: 点申请开票}\n"
        "  - {id: refund, questions: [退款多久到账], answer: 三天}\n")})
    kb = reader.load(folder, None)
    assert (tmp_path / "character-bigrams.npz").exists()
    assert reader.match(kb, "开发票", "zh").best.entry.id == "invoice"  # type: ignore[union-attr]
