"""Configuration: the shipped file is valid; mistakes stop start-up with one clear line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bot.config import load_config
from bot.errors import ConfigError
from tests.conftest import PROJECT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_loads_with_paths_beside_it() -> None:
    config = load_config(PROJECT / "config.yaml")
    assert config.knowledge_base.path == PROJECT / "kb"
    assert config.store.path == PROJECT / "data" / "kefu.sqlite3"
    assert config.business.default_language == "zh"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  prot: 8080\n", "config.yaml: server.prot: unknown key (check the spelling)"),
        ("server:\n  port: eighty\n", "config.yaml: server.port: Input should be a valid integer"),
        ("server:\n  port: 70000\n", "config.yaml: server.port: Input should be less than"),
        ("business:\n  timezone: Mars/Olympus\n", "business.timezone: unknown time zone"),
        ("business:\n  hours:\n    mon: 9-18\n",
         'business.hours: expected "HH:MM-HH:MM"'),
        ("business:\n  hours:\n    funday: 09:00-18:00\n", "unknown weekday 'funday'"),
        ("matching:\n  answer_confidence: 0.3\n  clarify_confidence: 0.5\n",
         "clarify_confidence must not be above answer_confidence"),
        ("matching:\n  answer_threshold: 70\n",
         "answer_threshold is no longer used: the bot decides by a calibrated confidence; "
         "set answer_confidence (0-1) instead"),
        ("store:\n  type: mysql\n", "store.type: Input should be 'sqlite'"),
        ("metrics:\n  allow: [10.0.0.0/33]\n",
         "metrics.allow: '10.0.0.0/33' is not a network like 10.0.0.0/8"),
        ("logging:\n  format: xml\n", "logging.format: Input should be 'text' or 'json'"),
        ("server:\n  port: 1\n\tbad: tab\n", "config.yaml:3: not valid YAML"),
        ("- just\n- a list\n", "expected a mapping of settings at the top level"),
        ("greeting:\n  templates:\n    en: hi\n", "no template for the default language 'zh'"),
        ("channels:\n  wechat: {enabled: true, app_id: wx1, token: t}\n",
         "channels.wechat: enabled, but app_secret not set"),
        ("channels:\n  wechat: {enabled: true, app_id: a, token: t, app_secret: s3cret, "
         "encoding_aes_key: short}\n", "mode safe needs encoding_aes_key"),
    ],
)
def test_mistakes_are_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    message = str(error.value)
    assert "\n" not in message
    assert "s3cret" not in message  # a section's values (secrets) are never echoed
    assert str(tmp_path / "config.yaml") in message
    assert expected in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_environment_overrides_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_SERVER__PORT", "9123")
    config = load_config(write(tmp_path, "server:\n  port: 8080\n"))
    assert config.server.port == 9123


def test_hours_and_holidays(tmp_path: Path) -> None:
    from bot.hours import BusinessHours

    config = load_config(write(tmp_path, """\
business:
  timezone: Asia/Shanghai
  hours: {mon: "09:00-12:00", tue: ["09:00-12:00", "13:00-18:00"], sun: closed}
  holidays: [2026-11-24]
"""))
    hours = BusinessHours(config.business)
    zone = hours.zone
    assert hours.is_open(datetime(2026, 11, 23, 10, 0, tzinfo=zone))  # Monday
    assert not hours.is_open(datetime(2026, 11, 23, 12, 0, tzinfo=zone))
    assert not hours.is_open(datetime(2026, 11, 24, 10, 0, tzinfo=zone))  # a holiday Tuesday
    assert hours.next_opening(datetime(2026, 11, 23, 12, 30, tzinfo=zone)) == datetime(
        2026, 11, 30, 9, 0, tzinfo=zone)  # past the holiday and the closed days
