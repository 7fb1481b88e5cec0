"""Logs: one line per event with the conversation id, as JSON or text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import Config, LoggingConfig, secrets_in
from bot.logs import about, configure_logging
from tests.harness import Kefu


@pytest.fixture
def logged() -> Iterator[Any]:
    """configure_logging as `kefu serve` does it, writing to a buffer; undone after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()

    def configure(format_: str, secrets: frozenset[str] = frozenset()) -> io.StringIO:
        configure_logging(LoggingConfig(format=format_), buffer,  # type: ignore[arg-type]
                          secrets)
        return buffer

    yield configure
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


async def test_json_lines_name_the_conversation_of_each_event(kefu: Kefu, logged: Any
                                                              ) -> None:
    buffer = logged("json")
    _, conversation_id = await kefu.queued_customer("转人工")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    (greeted,) = [line for line in lines if line.get("event") == "greeted"]
    assert greeted["conversation_id"] == conversation_id
    assert greeted["latency_ms"] >= 0 and greeted["level"] == "INFO"
    (queued,) = [line for line in lines if line.get("event") == "queued"]
    assert (queued["conversation_id"], queued["reason"]) == (conversation_id, "request")


def test_text_lines_carry_the_fields_and_tracebacks_stay_whole(logged: Any) -> None:
    buffer = logged("text")
    log = logging.getLogger("kefu.test")
    with about("c-42"):
        log.info("answered", extra={"event": "answered", "entry": "return-policy"})
        try:
            raise ValueError("broken template")
        except ValueError:
            log.exception("could not answer")
    log.info("outside any conversation")
    first, second, *trace, last = buffer.getvalue().splitlines()
    assert first.endswith("INFO kefu.test: answered [conversation_id=c-42 event=answered "
                          "entry=return-policy]")
    assert second.endswith("ERROR kefu.test: could not answer [conversation_id=c-42]")
    assert trace[0] == "Traceback (most recent call last):"
    assert trace[-1] == "ValueError: broken template"
    assert last.endswith("INFO kefu.test: outside any conversation")


def test_json_exceptions_are_one_line_too(logged: Any) -> None:
    buffer = logged("json")
    with about("c-7"):
        try:
            {}["missing"]
        except KeyError:
            logging.getLogger("kefu.test").exception("lookup failed")
    (line,) = buffer.getvalue().splitlines()
    record = json.loads(line)
    assert record["conversation_id"] == "c-7"
    assert record["exception"].endswith("KeyError: 'missing'")


def test_access_log_lines_are_not_doubled_in_text(logged: Any) -> None:
    buffer = logged("text")
    logging.getLogger("aiohttp.access").info(
        '127.0.0.1 "GET /healthz HTTP/1.1" 200', extra={"remote_address": "127.0.0.1"})
    assert buffer.getvalue().rstrip().endswith('"GET /healthz HTTP/1.1" 200')


def test_a_configured_secret_a_library_logs_is_written_as_stars(logged: Any) -> None:
    token = "123456:AAE-bot-token-from-botfather"
    config = Config.model_validate({"channels": {"telegram": {"token": token},
                                                 "wechat": {"app_secret": "wx-app-secret-1"}}})
    assert {token, "wx-app-secret-1"} <= secrets_in(config)
    buffer = logged("text", secrets_in(config))
    logging.getLogger("httpx").warning('HTTP Request: POST %s "HTTP/1.1 200 OK"',
                                       f"https://api.telegram.org/bot{token}/getUpdates")
    assert token not in buffer.getvalue()
    assert "https://api.telegram.org/bot***/getUpdates" in buffer.getvalue()
