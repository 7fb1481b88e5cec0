"""`kefu export`: customers, cases and conversations as CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.config import Config
from handoff.export import export
from handoff.report import Period
from tests.harness import Kefu, wait_for
from tests.test_cli import KEFU


def kefu_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEFU, *args], capture_output=True, text=True, timeout=60)


async def test_exports_hold_what_the_desk_recorded(make_config: Callable[..., Config],
                                                   tmp_path: Path) -> None:
    store_path = tmp_path / "kefu.sqlite3"
    config = make_config(desk={"auto_assign": False}, store={"path": str(store_path)})
    kefu = await Kefu(config).start()
    try:
        await kefu.add_agent("duty", online=True)
        customer, conversation_id = await kefu.queued_customer(
            "我要投诉，快递没到，电话 13812345678")
        await wait_for(lambda: kefu.store.customers_with_contact("13812345678"))
        today = Period.parse(None, None, ZoneInfo(config.business.timezone), time.time(), 7)

        text, count = await export(kefu.store, "customers", today, "csv", unmasked=True)
        (row,) = list(csv.DictReader(io.StringIO(text)))
        assert count == 1 and row["phones"] == "13812345678"
        masked, _ = await export(kefu.store, "customers", today, "csv")
        assert "13812345678" not in masked
        (masked_row,) = list(csv.DictReader(io.StringIO(masked)))
        assert masked_row["phones"] == "138****5678"
        assert row["channels"] == f"webchat:{customer.id}"

        text, count = await export(kefu.store, "cases", today, "jsonl")
        (case,) = [json.loads(line) for line in text.splitlines()]
        assert case["conversation_id"] == conversation_id
        assert case["summary"] == "我要投诉，快递没到，电话 138****5678"
        assert case["timeline"][0]["what"] == "opened"

        text, count = await export(kefu.store, "conversations", today, "csv")
        (row,) = list(csv.DictReader(io.StringIO(text)))
        assert (row["id"], row["state"], row["customer_id"]) == (
            conversation_id, "queued", case["customer_id"])
        assert int(row["messages"]) == 3  # the question, the greeting, the handoff message

        empty, count = await export(kefu.store, "cases", Period.parse(
            "2020-01-01", "2020-01-02", ZoneInfo("Asia/Shanghai"), time.time(), 7), "csv")
        assert count == 0 and empty.startswith("id,customer_id,customer,")
    finally:
        await kefu.stop()

    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"store:\n  path: {store_path}\n", encoding="utf-8")
    out = tmp_path / "cases.jsonl"
    made = kefu_cli("--config", str(config_file), "export", "cases", "-o", str(out))
    assert made.returncode == 0, made.stderr
    assert "cases.jsonl: 1 cases from" in made.stderr and "(jsonl)" in made.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["id"] == case["id"]
    wrong = kefu_cli("--config", str(config_file), "export", "orders")
    assert wrong.returncode == 2 and "invalid choice: 'orders'" in wrong.stderr
