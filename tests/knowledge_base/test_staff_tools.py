"""`kefu kb gaps` and `kefu kb import`, run as staff run them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import subprocess
import time
import zipfile
from pathlib import Path

import yaml

from bot.store import UnansweredQuestion
from bot.store.sqlite import SqliteStore
from knowledge_base.gaps import group
from tests.conftest import TEST_KB
from tests.harness import write_kb
from tests.test_cli import KEFU

ASKED = ["能便宜点吗", "可以便宜一点吗", "能不能便宜点", "能便宜点吗", "能便宜点吗",
         "有优惠券吗", "有没有优惠券", "今天天气怎么样", "天气怎么样",
         "do you ship to canada", "can you ship to canada?", "shipping to Canada"]


def test_paraphrases_are_grouped_most_asked_first() -> None:
    groups = [dict(g) for g in group(ASKED)]
    assert groups[0] == {"能便宜点吗": 3, "可以便宜一点吗": 1, "能不能便宜点": 1}
    assert {"do you ship to canada": 1, "can you ship to canada?": 1,
            "shipping to Canada": 1} in groups
    assert {"今天天气怎么样": 1, "天气怎么样": 1} in groups
    assert {"有优惠券吗": 1, "有没有优惠券": 1} in groups
    assert len(groups) == 4


def setup(tmp_path: Path) -> Path:
    kb = write_kb(tmp_path / "kb", TEST_KB)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"knowledge_base": {"path": str(kb)},
                                      "store": {"path": str(tmp_path / "k.sqlite3")}}),
                      encoding="utf-8")
    return config


def kefu(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEFU, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=60)


def test_gaps_lists_groups_with_the_closest_entry_and_drafts_entries(tmp_path: Path) -> None:
    config = setup(tmp_path)

    async def seed() -> None:
        store = await SqliteStore.open(tmp_path / "k.sqlite3")
        now = time.time()
        for i, text in enumerate([*ASKED, "退货要运费吗"]):
            await store.record_unanswered(UnansweredQuestion(f"c{i}", text, None, None, now))
        await store.record_unanswered(UnansweredQuestion("old", "很久以前的问题", None, None,
                                                         now - 90 * 86400))
        await store.close()

    asyncio.run(seed())
    draft = tmp_path / "draft.yaml"
    result = kefu(config, "kb", "gaps", "--draft", str(draft))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("13 questions the bot could not answer in the last 30 days, "
                               "in 5 groups")
    assert lines[1] == "  1. asked 5x  能便宜点吗 / 可以便宜一点吗 / 能不能便宜点"
    assert "closest entry: return-policy" in result.stdout  # for 退货要运费吗
    assert "很久以前的问题" not in result.stdout
    drafted = yaml.safe_load(draft.read_text(encoding="utf-8"))["entries"]
    assert drafted[0] == {"id": "draft-1", "questions": ["能便宜点吗", "可以便宜一点吗",
                                                         "能不能便宜点"],
                          "answer": "TODO: write the answer"}


def write_xlsx(path: Path, rows: list[list[str]]) -> None:
    """A minimal workbook, as a spreadsheet program saves one (shared strings)."""
    strings = [cell for row in rows for cell in row]
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    shared = "".join(f"<si><t>{s}</t></si>" for s in strings)
    cells, n = [], 0
    for r, row in enumerate(rows, start=1):
        row_cells = []
        for c, _ in enumerate(row):
            row_cells.append(f'<c r="{"AB"[c]}{r}" t="s"><v>{n}</v></c>')
            n += 1
        cells.append(f'<row r="{r}">{"".join(row_cells)}</row>')
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("xl/sharedStrings.xml", f"<sst {ns}>{shared}</sst>")
        book.writestr("xl/worksheets/sheet1.xml",
                      f"<worksheet {ns}><sheetData>{''.join(cells)}</sheetData></worksheet>")


def test_import_turns_a_spreadsheet_into_entries(tmp_path: Path) -> None:
    config = setup(tmp_path)
    sheet = tmp_path / "常见问题.csv"
    sheet.write_text("问题,答案\n包邮吗,满 99 元包邮。\n运费多少,满 99 元包邮。\n"
                     "支持货到付款吗,暂不支持货到付款。\n,没有问题的一行\n", encoding="utf-8-sig")
    result = kefu(config, "kb", "import", str(sheet), "--name", "shipping", "--lang", "zh")
    assert result.returncode == 0, result.stderr
    assert "kb/shipping.yaml: 2 entries, 3 questions; 1 rows skipped" in result.stdout
    assert "常见问题.csv:5: no question; skipped" in result.stderr
    assert "importing" not in result.stderr  # no progress for four rows
    written = yaml.safe_load((tmp_path / "kb" / "shipping.yaml").read_text(encoding="utf-8"))
    assert written["entries"][0] == {"id": "shipping-1", "questions": ["包邮吗", "运费多少"],
                                     "answer": "满 99 元包邮。"}
    again = kefu(config, "kb", "import", str(sheet), "--name", "shipping")
    assert again.returncode == 2 and "already exists" in again.stderr
    asked = kefu(config, "kb", "ask", "运费多少")
    assert "shipping-1" in asked.stdout

    book = tmp_path / "faq.xlsx"
    write_xlsx(book, [["question", "answer"], ["do you ship abroad", "Not yet, sorry."]])
    result = kefu(config, "kb", "import", str(book))
    assert result.returncode == 0, result.stderr
    assert "kb/faq.yaml: 1 entries, 1 questions" in result.stdout
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"not a zip")
    result = kefu(config, "kb", "import", str(bad))
    assert result.returncode == 1 and "not a readable .xlsx file" in result.stderr


def test_import_reads_the_encodings_excel_saves_in_china(tmp_path: Path) -> None:
    config = setup(tmp_path)
    rows = "问题,答案\n可以开发票吗,可以，下单时填写抬头。\n"
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(rows.encode("gbk"))
    result = kefu(config, "kb", "import", str(gbk), "--name", "invoices")
    assert result.returncode == 0, result.stderr
    assert "1 entries, 1 questions (read as GB18030)" in result.stdout
    written = yaml.safe_load((tmp_path / "kb" / "invoices.yaml").read_text(encoding="utf-8"))
    assert written["entries"][0]["questions"] == ["可以开发票吗"]

    bom = tmp_path / "bom.csv"
    bom.write_bytes(rows.replace("发票", "收据").encode("utf-8-sig"))
    result = kefu(config, "kb", "import", str(bom), "--name", "receipts")
    assert result.returncode == 0 and "(read as" not in result.stdout, result.stderr

    big5 = tmp_path / "big5.csv"
    big5.write_bytes("問題,答案\n可以換貨嗎,可以。\n".encode("big5"))
    given = kefu(config, "kb", "import", str(big5), "--encoding", "big5")
    assert given.returncode == 0, given.stderr
    assert "(read as big5)" in given.stdout
    wrong = kefu(config, "kb", "import", str(gbk), "--name", "again", "--encoding", "utf-8")
    assert (wrong.returncode, wrong.stderr) == (
        1, "kefu: gbk.csv: not utf-8 text (byte 0); check --encoding\n")
    unknown = kefu(config, "kb", "import", str(gbk), "--name", "more", "--encoding", "klingon")
    assert unknown.returncode == 2 and "--encoding klingon: not an encoding" in unknown.stderr


def test_an_unreadable_sheet_is_not_called_a_knowledge_base_problem(tmp_path: Path) -> None:
    config = setup(tmp_path)
    sheet = tmp_path / "latin.csv"
    sheet.write_bytes(b"\x81\x30\x81question,answer\n")  # not UTF-8, nor GB18030
    result = kefu(config, "kb", "import", str(sheet))
    assert result.returncode == 1
    assert result.stderr == ("kefu: latin.csv: neither UTF-8 nor GBK/GB18030 text; save it as "
                             "'CSV UTF-8' or give its encoding with --encoding\n")
    assert not (tmp_path / "kb" / "latin.yaml").exists()


def test_a_small_import_draws_no_bar_on_a_terminal(tmp_path: Path) -> None:
    config = setup(tmp_path)
    sheet = tmp_path / "few.csv"
    sheet.write_text("问题,答案\n包邮吗,满 99 元包邮。\n", encoding="utf-8")
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([KEFU, "--config", str(config), "kb", "import", str(sheet)],
                                stdout=subprocess.PIPE, stderr=follower, text=True, timeout=60)
        os.close(follower)
        shown = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 4096):
                shown += chunk
    finally:
        os.close(leader)
    assert result.returncode == 0
    assert b"importing" not in shown and b"\r" not in shown
