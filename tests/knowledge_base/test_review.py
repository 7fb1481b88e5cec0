"""What kb check finds beyond broken files, and the regression file as the reload's gate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Config, MatchingConfig
from bot.errors import KnowledgeBaseError
from bot.understanding import reader_for
from knowledge_base.base import KnowledgeBase
from knowledge_base.review import (
    conflicts,
    load_regressions,
    near_duplicates,
    regressions,
)
from tests.conftest import TEST_KB
from tests.harness import Kefu, write_kb

MATCHING = MatchingConfig()
READER = reader_for(Config.model_validate({"matching": {"vector_cache": None}}))


def kb_of(tmp_path: Path, text: str) -> KnowledgeBase:
    return KnowledgeBase.load(write_kb(tmp_path / "kb", {"faq.yaml": text}))


INVOICES = """\
- id: invoice-request-en
  lang: en
  questions: [how do I get an invoice, can you issue an invoice, I need a receipt for my order]
  answer: Choose "Request invoice" on the order page.
- id: invoice-change-en
  lang: en
  questions: [the invoice has the wrong company name, can you reissue my invoice,
              how do I correct my invoice]
  answer: Choose "Reissue invoice" on the order page.
"""


def test_a_question_that_would_pull_customers_to_another_entry_is_a_conflict(
    tmp_path: Path,
) -> None:
    kb = READER.load(write_kb(tmp_path / "kb", {**TEST_KB, "invoices.yaml": INVOICES}), None)
    findings = [f for f in conflicts(kb, READER)
                if f.problem.startswith("without its own example, 'can you issue an invoice'")]
    (finding,) = findings
    assert finding.where == "kb/invoices.yaml:1"
    assert "'can you issue an invoice' would be answered by entry 'invoice-change-en'" in \
        finding.problem
    assert "move it to 'invoice-change-en'" in finding.fix
    reworded = INVOICES.replace("can you issue an invoice", "can I have an invoice for my "
                                "purchase")
    fixed = READER.load(write_kb(tmp_path / "fixed", {**TEST_KB, "invoices.yaml": reworded}),
                        None)
    assert not [f for f in conflicts(fixed, READER) if "for my purchase" in f.problem]


def test_entries_with_the_same_answer_are_near_duplicates(tmp_path: Path) -> None:
    kb = kb_of(tmp_path, """\
- id: refund-time
  questions: [退款多久到账]
  answer: 退款 1-3 个工作日原路退回。
- id: refund-when
  questions: [钱什么时候退给我]
  answer: 退款1-3个工作日原路退回
""")
    (finding,) = near_duplicates(kb, READER)
    assert finding.where == "kb/faq.yaml:4" and "'refund-when'" in finding.problem
    assert "merge" in finding.fix


def test_regressions_catch_an_edit_that_breaks_a_known_answer(tmp_path: Path) -> None:
    file = tmp_path / "regressions.yaml"
    file.write_text("- {question: 退货怎么办, expect: return-policy}\n"
                    "- {question: 今天天气怎么样, expect: decline}\n"
                    "- {question: 发票, expect: invoice}\n", encoding="utf-8")
    good = KnowledgeBase.load(write_kb(tmp_path / "good", TEST_KB))
    results = regressions(good, load_regressions(file), READER, "zh")
    assert [str(r) for r in results] == [
        "regressions.yaml:3: expects entry 'invoice', which does not exist (any more); fix: "
        "fix the id, or the knowledge base (or expect one of decline, handoff, small_talk)"]
    broken = TEST_KB["returns.yaml"].replace("退货怎么办, ", "")  # an edit drops the question
    bad = KnowledgeBase.load(write_kb(tmp_path / "bad", {**TEST_KB, "returns.yaml": broken}))
    failed = regressions(bad, load_regressions(file)[:2], READER, "zh")
    assert [f.where for f in failed] == ["regressions.yaml:1"]
    assert "should answer with 'return-policy', but the bot would not answer" in \
        failed[0].problem


def test_a_malformed_regression_file_is_named_with_its_line(tmp_path: Path) -> None:
    file = tmp_path / "regressions.yaml"
    file.write_text("- {question: 退货怎么办}\n- just text\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError) as error:
        load_regressions(file)
    assert [p.split(":")[1] for p in error.value.problems] == ["1", "2"]


async def test_the_running_bot_refuses_an_edit_that_breaks_a_regression(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    file = tmp_path / "regressions.yaml"
    file.write_text("- {question: 退货怎么办, expect: return-policy}\n", encoding="utf-8")
    kefu = await Kefu(make_config()).start()
    try:
        live = kefu.knowledge_base
        folder: Path = kefu.config.knowledge_base.path
        renamed = TEST_KB["returns.yaml"].replace("id: return-policy", "id: returns")
        (folder / "returns.yaml").write_text(renamed, encoding="utf-8")
        assert not await live.reload_if_changed()
        assert "regressions.yaml:1" in live.last_problems[0]
        visitor = await kefu.visitor()
        assert (await visitor.say("退货怎么办"))[-1]["kind"] == "answer"  # the last good one
    finally:
        await kefu.stop()
