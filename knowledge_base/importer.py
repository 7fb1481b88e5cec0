"""`kefu kb import`: a spreadsheet of questions and answers becomes a knowledge-base file.

CSV (UTF-8, with or without a BOM) or XLSX (the first sheet). The columns are found by
their header (question/answer, 问题/答案, q/a...) or else taken as the first two. Rows with
the same answer become one entry with several questions. Nothing is overwritten: the new
file is written next to the others and checked like them.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import yaml

from bot.errors import KnowledgeBaseError
from bot.progress import progress

QUESTION_HEADERS = {"question", "questions", "q", "问题", "提问", "问"}
ANSWER_HEADERS = {"answer", "a", "答案", "回答", "答复", "答"}
_SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


@dataclass(frozen=True, slots=True)
class Imported:
    entries: int
    questions: int
    skipped: list[str]  # rows that could not be used, with why


def read_rows(path: Path) -> list[list[str]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise KnowledgeBaseError([f"{path.name}: not UTF-8 text (byte {exc.start}); save "
                                      "it as 'CSV UTF-8'"]) from None
        return [row for row in csv.reader(io.StringIO(text))]
    if suffix == ".xlsx":
        return list(_xlsx_rows(path))
    raise KnowledgeBaseError([f"{path.name}: import reads .csv or .xlsx files"])


def _xlsx_rows(path: Path) -> Iterator[list[str]]:
    """The first sheet's rows as text: enough of XLSX for a two-column list."""
    try:
        with zipfile.ZipFile(path) as book:
            names = set(book.namelist())
            shared = []
            if "xl/sharedStrings.xml" in names:
                for item in ElementTree.fromstring(book.read("xl/sharedStrings.xml")):
                    shared.append("".join(t.text or "" for t in item.iter(f"{_SHEET}t")))
            sheet = next((n for n in sorted(names)
                          if n.startswith("xl/worksheets/sheet")), None)
            if sheet is None:
                raise KnowledgeBaseError([f"{path.name}: the workbook has no sheet"])
            root = ElementTree.fromstring(book.read(sheet))
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError) as exc:
        raise KnowledgeBaseError([f"{path.name}: not a readable .xlsx file ({exc})"]) from None
    for row in root.iter(f"{_SHEET}row"):
        cells: dict[int, str] = {}
        for cell in row.iter(f"{_SHEET}c"):
            column = _column(cell.get("r", "A1"))
            kind = cell.get("t")
            if kind == "inlineStr":
                value = "".join(t.text or "" for t in cell.iter(f"{_SHEET}t"))
            else:
                raw = cell.findtext(f"{_SHEET}v") or ""
                value = shared[int(raw)] if kind == "s" and raw.isdigit() else raw
            cells[column] = value
        if cells:
            yield [cells.get(i, "") for i in range(max(cells) + 1)]


def _column(reference: str) -> int:
    letters = "".join(c for c in reference if c.isalpha())
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number - 1


def import_file(source: Path, target: Path, lang: str | None) -> Imported:
    rows = read_rows(source)
    if not rows:
        raise KnowledgeBaseError([f"{source.name}: no rows"])
    header = [c.strip().casefold() for c in rows[0]]
    named_q = next((i for i, h in enumerate(header) if h in QUESTION_HEADERS), None)
    named_a = next((i for i, h in enumerate(header) if h in ANSWER_HEADERS), None)
    has_header = named_q is not None and named_a is not None
    q_col, a_col = (named_q, named_a) if named_q is not None and named_a is not None \
        else (0, 1)
    start = 1 if has_header else 0
    answers: dict[str, list[str]] = {}
    skipped = []
    for number, row in progress(enumerate(rows[start:], start=start + 1),
                                len(rows) - start, f"importing {source.name}"):
        question = row[q_col].strip() if len(row) > q_col else ""
        answer = row[a_col].strip() if len(row) > a_col else ""
        if not question or not answer:
            if any(c.strip() for c in row):
                skipped.append(f"{source.name}:{number}: "
                               f"{'no question' if not question else 'no answer'}; skipped")
            continue
        questions = answers.setdefault(answer, [])
        if question not in questions:
            questions.append(question)
    if not answers:
        raise KnowledgeBaseError([f"{source.name}: no row has both a question and an answer",
                                  *skipped])
    entries = [{"id": f"{target.stem}-{n}", "questions": questions, "answer": answer}
               for n, (answer, questions) in enumerate(answers.items(), start=1)]
    document: dict[str, object] = {"entries": entries}
    if lang:
        document = {"lang": lang, **document}
    target.write_text(f"# Imported from {source.name}; edit freely.\n"
                      + yaml.safe_dump(document, allow_unicode=True, sort_keys=False,
                                       width=100), encoding="utf-8")
    return Imported(len(entries), sum(len(q) for q in answers.values()), skipped)
