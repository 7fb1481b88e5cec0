"""`kefu kb import`: a spreadsheet of questions and answers becomes a knowledge-base file.

CSV or XLSX (the first sheet). A CSV file's encoding is told from the file (a BOM; else
UTF-8; else GB18030, the superset of GBK that Excel in China saves "CSV" as) unless given.
The columns are found by
their header (question/answer, 问题/答案, q/a...) or else taken as the first two. Rows with
the same answer become one entry with several questions. Nothing is overwritten: the new
file is written next to the others and checked like them.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import yaml

from bot.errors import SheetError
from bot.progress import progress

QUESTION_HEADERS = {"question", "questions", "q", "问题", "提问", "问"}
ANSWER_HEADERS = {"answer", "a", "答案", "回答", "答复", "答"}
_SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


@dataclass(frozen=True, slots=True)
class Imported:
    entries: int
    questions: int
    skipped: list[str]  # rows that could not be used, with why
    encoding: str | None  # how a CSV file was read ("GB18030"), for the summary


# Byte-order marks, longest first (UTF-32's starts like UTF-16's).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_NAMES = {"utf-8-sig": "UTF-8", "utf-8": "UTF-8", "gb18030": "GB18030", "utf-16": "UTF-16",
          "utf-32": "UTF-32"}


def decode(data: bytes, name: str, encoding: str | None = None) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read with: `encoding` if given, else
    from a BOM, else UTF-8, else GB18030. SheetError when none of them reads it."""
    if encoding is not None:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise SheetError([f"{name}: not {encoding} text (byte {exc.start}); check "
                              "--encoding"]) from None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), _NAMES[codec]
            except UnicodeDecodeError as exc:
                raise SheetError([f"{name}: starts like {_NAMES[codec]} but is not (byte "
                                  f"{exc.start}); give --encoding"]) from None
    for codec in ("utf-8", "gb18030"):
        try:
            return data.decode(codec), _NAMES[codec]
        except UnicodeDecodeError:
            continue
    raise SheetError([f"{name}: neither UTF-8 nor GBK/GB18030 text; save it as 'CSV UTF-8' "
                      "or give its encoding with --encoding"])


def read_rows(path: Path, encoding: str | None = None) -> tuple[list[list[str]], str | None]:
    """The rows as text, and how a CSV file was decoded (None for XLSX)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise SheetError([f"{path.name}: import reads .csv or .xlsx files"])
    if not path.is_file():
        raise SheetError([f"{path}: no such file"])
    if suffix == ".csv":
        text, used = decode(path.read_bytes(), path.name, encoding)
        return [row for row in csv.reader(io.StringIO(text))], used
    return list(_xlsx_rows(path)), None


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
                raise SheetError([f"{path.name}: the workbook has no sheet"])
            root = ElementTree.fromstring(book.read(sheet))
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError) as exc:
        raise SheetError([f"{path.name}: not a readable .xlsx file ({exc})"]) from None
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


def import_file(source: Path, target: Path, lang: str | None,
                encoding: str | None = None) -> Imported:
    rows, used = read_rows(source, encoding)
    if not rows:
        raise SheetError([f"{source.name}: no rows"])
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
        raise SheetError([f"{source.name}: no row has both a question and an answer",
                          *skipped])
    entries = [{"id": f"{target.stem}-{n}", "questions": questions, "answer": answer}
               for n, (answer, questions) in enumerate(answers.items(), start=1)]
    document: dict[str, object] = {"entries": entries}
    if lang:
        document = {"lang": lang, **document}
    target.write_text(f"# Imported from {source.name}; edit freely.\n"
                      + yaml.safe_dump(document, allow_unicode=True, sort_keys=False,
                                       width=100), encoding="utf-8")
    return Imported(len(entries), sum(len(q) for q in answers.values()), skipped, used)
