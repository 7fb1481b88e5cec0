"""Loading FAQ YAML: every problem is reported at once, with file:line, in words staff act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import KnowledgeBaseError
from knowledge_base.base import KnowledgeBase
from knowledge_base.loader import load_entries
from tests.conftest import PROJECT
from tests.harness import write_kb


def problems(folder: Path) -> list[str]:
    with pytest.raises(KnowledgeBaseError) as error:
        load_entries(folder)
    return error.value.problems


def test_shipped_sample_is_valid_and_big_enough() -> None:
    entries = load_entries(PROJECT / "kb")
    assert len(entries) >= 30
    assert all(len(e.questions) >= 3 for e in entries)
    assert {e.lang for e in entries} == {"zh", "en"}
    topics = {p.stem for p in (PROJECT / "kb").glob("*.yaml")}
    assert {"orders", "delivery", "returns", "payment", "invoices", "hours"} <= topics


@pytest.mark.parametrize(
    ("question", "entry_id"),
    [("退货怎么办", "return-policy"), ("我要发票", "invoice-request"),
     ("怎么付款呢？", "payment-methods"), ("how do I return an item", "return-policy-en"),
     ("can I pay with Alipay", "payment-methods-en"), ("运费多少钱", "delivery-fee")],
)
def test_sample_answers_common_questions(question: str, entry_id: str) -> None:
    best = KnowledgeBase.load(PROJECT / "kb").matcher.match(question).best
    assert best is not None and best.entry.id == entry_id


def test_every_problem_is_listed_with_file_and_line(tmp_path: Path) -> None:
    folder = write_kb(tmp_path / "kb", {
        "a.yaml": """\
entries:
  - id: refund
    questions: [退款多久到账]
    answer: 三天
  - id: refund
    questions: [怎么退款]
    answer: 见上
  - id: empty-answer
    questions: [发票]
    answer: "  "
  - id: typo
    question: [运费]
    answer: 八元
""",
        "b.yaml": """\
- id: same-question
  questions: [退款多久到账]
  answer: "{{ undefined_thing }}"
- id: bad template
  questions: [x]
  answer: "{% if %}"
""",
        "c.yaml": "entries:\n  - id: ok\n    questions: [a\n",
    })
    found = problems(folder)
    text = "\n".join(found)
    assert "kb/a.yaml:5: duplicate id 'refund' (first used at kb/a.yaml:2)" in text
    assert "kb/a.yaml:10: answer is empty" in text
    assert "kb/a.yaml:12: unknown key 'question' (did you mean 'questions'?)" in text
    assert "kb/b.yaml:3: answer template: 'undefined_thing' is undefined" in text
    assert "kb/b.yaml:4: id must be letters, digits" in text
    assert "kb/b.yaml:6: answer template:" in text
    assert "kb/c.yaml:4: not valid YAML" in text
    assert len(found) == 8, text


def test_same_question_in_two_entries_is_a_problem(tmp_path: Path) -> None:
    folder = write_kb(tmp_path / "kb", {"a.yaml": """\
- id: one
  questions: [退款多久到账]
  answer: 三天
- id: two
  questions: ["退款多久到账？"]
  answer: 五天
"""})
    (problem,) = problems(folder)
    assert problem.startswith("kb/a.yaml:4: question '退款多久到账？' is also in entry 'one'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("just a string\n", "expected a list of entries"),
        ("- [not, a, mapping]\n", "an entry must be a mapping"),
        ("- id: a\n  answer: b\n", "entry is missing 'questions'"),
        ("- id: a\n  questions: []\n  answer: b\n", "questions must be a list of at least one"),
        ("- id: a\n  questions: ['  ']\n  answer: b\n", "question 1 is empty"),
        ("- id: a\n  questions: [q]\n  answer: b\n  handoff: maybe\n", "handoff must be true"),
        ("- id: a\n  questions: [q]\n  answer: b\n  lang: fr\n", "lang must be one of"),
        ("- id: a\n  questions: [q]\n  answer: b\n  answer: c\n", "key 'answer' appears twice"),
        ("entries:\n  - id: a\n    questions: [q]\n    answer: b\nextra: 1\n",
         "unknown top-level key 'extra'"),
    ],
)
def test_single_problems(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(write_kb(tmp_path / "kb", {"a.yaml": text}))
    assert any(expected in p for p in found), found


def test_not_utf8_and_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "gbk.yaml").write_bytes("- id: a\n  questions: [退货]\n".encode("gbk"))
    assert "not UTF-8 text" in problems(folder)[0]
    assert "folder not found" in problems(tmp_path / "missing")[0]


def test_empty_folder_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    assert "no .yaml files found" in problems(tmp_path / "kb")[0]


@pytest.mark.parametrize(("answer", "problem"), [
    ("{{ 7 ** 100000000 }}", "too large a number"),
    ("{{ 'x' * 10 ** 9 }}", "is more than 10000"),
    ("{% for i in range(10 ** 6) %}{% endfor %}", "range() of more than 1000 numbers"),
    ("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
     "{% endfor %}{% endfor %}{% endfor %}", "takes more than 50 ms to render"),
    # a few long lines reach the output limit long before any time budget, on any machine
    ("{% if not is_open %}{% for i in range(1000) %}{{ 'x' * 5000 }}{% endfor %}{% endif %}",
     "renders more than 10000 characters"),
])
def test_a_heavy_answer_template_is_refused_at_load(tmp_path: Path, answer: str,
                                                    problem: str) -> None:
    folder = write_kb(tmp_path / "kb", {"a.yaml": (
        "- id: heavy\n  questions: [算一下]\n  answer: |\n    " + answer + "\n")})
    (found,) = problems(folder)
    assert found.startswith("kb/a.yaml:3: answer template:") and problem in found


def test_an_ordinary_template_still_loads(tmp_path: Path) -> None:
    folder = write_kb(tmp_path / "kb", {"a.yaml": (
        "- id: hours\n  questions: [几点上班]\n  answer: "
        "\"{% if is_open %}{{ business }}在线{% else %}{{ back_at }}上班{% endif %}"
        "{% for i in range(3) %}!{% endfor %}\"\n")})
    assert [e.id for e in load_entries(folder)] == ["hours"]
