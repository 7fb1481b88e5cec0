"""Logs: one line per event, each with the conversation it is about, as text or JSON.

The conversation comes from the task's context (`about`), so every line written while a
conversation is handled carries its id without each call site passing it. Fields given
with `extra=` (event, latency_ms, agent_id...) become JSON keys, or `key=value` in text.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.config import LoggingConfig
from bot.masking import MaskingFilter

current_conversation: ContextVar[str | None] = ContextVar("current_conversation",
                                                          default=None)
# Loggers whose `extra=` fields repeat their message: text lines leave them out.
_SAID_IN_THE_MESSAGE = frozenset({"aiohttp.access"})
# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


@contextmanager
def about(conversation_id: str | None) -> Iterator[None]:
    """Lines logged inside are about this conversation (None: not yet known)."""
    token = current_conversation.set(conversation_id)
    try:
        yield
    finally:
        current_conversation.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    conversation = fields.pop("conversation_id", None) or current_conversation.get()
    return {"conversation_id": conversation, **fields} if conversation else fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            **_fields(record)}
        if record.exc_info:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if record.name in _SAID_IN_THE_MESSAGE:
            fields = {k: v for k, v in fields.items() if k == "conversation_id"}
        if not fields:
            return text
        first, _, rest = text.partition("\n")  # a traceback stays below the line
        pairs = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{first} [{pairs}]" + (f"\n{rest}" if rest else "")


class HideSecrets(logging.Filter):
    """The last line of defence: a configured secret that a library puts in a line (a bot
    token in a request URL) is written as `***`. kefu's own code never logs one."""

    def __init__(self, secrets: frozenset[str]) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: frozenset[str]) -> None:
        self._secrets = sorted({*self._secrets, *secrets} - {""}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = message
        for secret in self._secrets:
            hidden = hidden.replace(secret, "***")
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


_library_filters: dict[str, HideSecrets] = {}  # logger name -> its filter


def hide_secrets_in(secrets: frozenset[str], *logger_names: str) -> None:
    """A library that writes a secret in its lines (httpx logs every request's URL, and a
    Telegram bot's URL holds its token) has it written as `***`, whatever the handlers."""
    for name in logger_names:
        if name not in _library_filters:
            _library_filters[name] = HideSecrets(frozenset())
            logging.getLogger(name).addFilter(_library_filters[name])
        _library_filters[name].add(secrets)


def configure_logging(config: LoggingConfig, stream: TextIO | None = None,
                      secrets: frozenset[str] = frozenset()) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    if config.mask_personal_data:
        handler.addFilter(MaskingFilter())
    if secrets:
        handler.addFilter(HideSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
