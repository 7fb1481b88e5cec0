from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.store import Store
from bot.store.sqlite import SqliteStore
from tests.browser import CHROMIUM, LAUNCH_ARGS
from tests.channels.local import STANDIN_ACCESS_LOG
from tests.harness import CONFIGURED_SECRETS, Kefu, write_kb
from tests.redis_support import redis_store

PROJECT = Path(__file__).resolve().parent.parent
# Polls of 50 ms for a `kefu serve` started by a test: 2 minutes, as on a loaded machine
# loading the model alone has taken most of that (a quiet one: a few seconds).
STARTUP_POLLS = 2400

# A small knowledge base whose scores are easy to reason about, so router tests do not
# depend on how the shipped sample is tuned.
TEST_KB = {
    "returns.yaml": """\
lang: zh
entries:
  - id: return-policy
    questions: [退货怎么办, 可以退货吗, 退货政策是什么]
    answer: 签收后 7 天内可以无理由退货。
  - id: refund-time
    questions: [退款多久到账, 什么时候退款]
    answer: 退款 1-3 个工作日到账。
  - id: parcel-lost
    questions: [包裹丢了怎么办, 快递显示签收但我没收到]
    answer: 非常抱歉，我们马上联系快递核实。
    handoff: true
""",
    "contact.yaml": """\
entries:
  - id: contact-phone
    lang: zh
    questions: [客服电话是多少, 怎么联系你们]
    answer: 客服热线 400-800-1234。
  - id: opening-hours-en
    lang: en
    questions: [what are your opening hours, when are you open]
    answer: "We work {{ hours }}."
""",
}

ALWAYS_OPEN = {day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != STANDIN_ACCESS_LOG:
            self.lines.append(f"{record.name}: {self.format(record)}")


@pytest.fixture(autouse=True)
def no_secret_in_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails any test whose log lines hold a secret of a kefu it started (bot tokens, app
    secrets, AES keys, webhook secrets). Channel tests log everything, DEBUG included."""
    root = logging.getLogger()
    level = logging.DEBUG if "tests/channels/" in str(request.path) else logging.INFO
    records, saved_level = _Records(), root.level
    root.addHandler(records)
    root.setLevel(min(saved_level, level) if saved_level else level)
    CONFIGURED_SECRETS.clear()
    try:
        yield
    finally:
        root.removeHandler(records)
        root.setLevel(saved_level)
    leaked = [(line, secret) for line in records.lines for secret in CONFIGURED_SECRETS
              if secret in line]
    if leaked:
        line, secret = leaked[0]
        pytest.fail(f"a configured secret ({secret[:4]}…) reached {len(leaked)} log "
                    f"line(s), e.g. {line[:300]}", pytrace=False)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """A config on a fresh store and a copy of the test knowledge base; overrides by section."""
    kb = write_kb(tmp_path / "kb", TEST_KB)

    def make(**sections: dict[str, Any]) -> Config:
        raw: dict[str, Any] = {
            "business": {"name": "测试店", "hours": ALWAYS_OPEN},
            "knowledge_base": {"path": str(kb), "reload_interval_seconds": 60,
                               "regressions": str(tmp_path / "regressions.yaml"),
                               "vocabulary": str(tmp_path / "vocabulary.yaml")},
            "store": {"path": str(tmp_path / "data" / "kefu.sqlite3")},
            # Matching in threads: a matching process per kefu would load the model for each
            # of hundreds of tests; tests/bot/test_answering.py runs the shipped processes.
            "matching": {"vector_cache": str(tmp_path / "data" / "vectors"), "processes": 0},
            "desk": {"quick_replies_path": str(PROJECT / "quick_replies.yaml")},
        }
        for section, values in sections.items():
            raw[section] = {**raw.get(section, {}), **values}
        return Config.model_validate(raw)

    return make


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless chromium (see tests/browser.py); modules using it skip without chromium."""
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "CI must install chromium (see .ci/run)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
def sample_kb(tmp_path: Path) -> Path:
    """A copy of the shipped knowledge base that a test may edit."""
    return Path(shutil.copytree(PROJECT / "kb", tmp_path / "sample-kb"))


@pytest.fixture
async def kefu(make_config: Callable[..., Config]) -> AsyncIterator[Kefu]:
    """A running kefu with one agent on duty who picks chats by hand, so a handoff waits in
    the queue (with nobody on duty it would become an offline message)."""
    running = await Kefu(make_config(desk={"auto_assign": False})).start()
    await running.add_agent("duty", online=True)
    yield running
    await running.stop()


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The same test on each storage engine: the embedded SQLite and Redis."""
    if request.param == "redis":
        async with redis_store() as opened:
            yield opened
        return
    sqlite = await SqliteStore.open(tmp_path / "store.sqlite3")
    yield sqlite
    await sqlite.close()
