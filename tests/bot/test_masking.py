"""Personal data masked where it leaves kefu: what a reader of an export or a log sees."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.config import LoggingConfig
from bot.logs import configure_logging
from bot.masking import mask_json, mask_text


@pytest.mark.parametrize(("typed", "shown"), [
    ("电话 13812345678", "电话 138****5678"),
    ("+86 138-1234-5678 或 0086 13812345678", "138****5678 或 138****5678"),
    ("座机 010-12345678", "座机 010****5678"),
    ("邮箱 Alice.W@Example.com", "邮箱 A***@Example.com"),
    ("身份证 11010519491231002X", "身份证 110***********002X"),
    ("卡号 6222 0212 3456 7890 128", "卡号 ***************0128"),
    ("card 4111-1111-1111-1111", "card ************1111"),
    ("tel13812345678 or a+86 138 1234 5678", "tel138****5678 or a138****5678"),
])
def test_contacts_and_numbers_are_masked_keeping_enough_to_tell_them_apart(
        typed: str, shown: str) -> None:
    assert mask_text(typed) == shown


@pytest.mark.parametrize("kept", [
    "订单号 2026112512345679",  # 16 digits, but not a valid card number (Luhn)
    "身份证 110105194912310021",  # 18 digits with a wrong check digit
    "日期 20261125，数量 3",
    "退货怎么办",
    # ids with phone- or card-like digits in them: a log line must keep them whole
    "greeted webchat/v3f8a13812345678ab9c0d1e2f3a4b5c6d7e",
    "conversation vd0f1fc4532015112830366aa07",
    "订单 A13812345678B",
])
def test_numbers_that_are_not_personal_data_stay_as_typed(kept: str) -> None:
    assert mask_text(kept) == kept


def test_json_is_masked_everywhere_but_ids() -> None:
    record = {"id": "C0123456789ab", "user_id": "13812345678", "phones": ["13812345678"],
              "notes": [{"text": "回电 13912345678"}], "rating": 5,
              "ticket": "0123456789abcdef0123456789abcdef"}
    assert mask_json(record) == {
        "id": "C0123456789ab", "user_id": "13812345678", "phones": ["138****5678"],
        "notes": [{"text": "回电 139****5678"}], "rating": 5,
        "ticket": "0123456789abcdef0123456789abcdef"}


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


@pytest.mark.parametrize("format_", ["text", "json"])
def test_log_lines_never_hold_a_whole_phone_email_or_card(root_logger: logging.Logger,
                                                          format_: str) -> None:
    buffer = io.StringIO()
    configure_logging(LoggingConfig(format=format_), buffer)  # type: ignore[arg-type]
    logging.getLogger("kefu.test").warning(
        "customer said %s", "打 13812345678 或发 bob@example.com", extra={
            "contact": "6222021234567890128", "conversation_id": "c1"})
    line = buffer.getvalue()
    for whole in ("13812345678", "bob@example.com", "6222021234567890128"):
        assert whole not in line
    assert "138****5678" in line and "b***@example.com" in line and "c1" in line
    if format_ == "json":
        assert json.loads(line)["contact"] == "***************0128"


def test_logs_in_full_when_the_operator_says_so(root_logger: logging.Logger) -> None:
    buffer = io.StringIO()
    configure_logging(LoggingConfig(mask_personal_data=False), buffer)
    logging.getLogger("kefu.test").warning("customer said %s", "13812345678")
    assert "13812345678" in buffer.getvalue()


@pytest.mark.parametrize("format_", ["text", "json"])
def test_a_traceback_in_the_log_is_masked_too(root_logger: logging.Logger,
                                              format_: str) -> None:
    buffer = io.StringIO()
    configure_logging(LoggingConfig(format=format_), buffer)  # type: ignore[arg-type]
    try:
        raise ValueError("cannot parse 13812345678")
    except ValueError:
        logging.getLogger("kefu.test").exception("capture failed")
    assert "13812345678" not in buffer.getvalue()
    assert "ValueError: cannot parse 138****5678" in buffer.getvalue().replace("\\n", "\n")
