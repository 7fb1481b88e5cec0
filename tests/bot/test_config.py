"""Configuration: the shipped file is valid; mistakes stop start-up with one clear line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.config import Config, _bare, load_config
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


def settings(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[str]:
    for name, field in model.model_fields.items():
        kind, path = _bare(field.annotation), (*prefix, name)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from settings(kind, path)
        else:
            yield ".".join(path)


def test_the_shipped_config_shows_every_setting() -> None:
    """It says it holds every setting: each one is there, set or as a commented line."""
    shown, stack = set(), []  # the keys above, by indentation
    for line in (PROJECT / "config.yaml").read_text(encoding="utf-8").splitlines():
        key = re.match(r"^(\s*)(?:# )?([a-z_]+):(\s|$)", line)
        if key:
            while stack and stack[-1][0] >= len(key.group(1)):
                stack.pop()
            stack.append((len(key.group(1)), key.group(2)))
            shown.add(".".join(name for _, name in stack))
    assert sorted(set(settings(Config)) - shown) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  prot: 8080\n", "config.yaml: server.prot: unknown key (check the spelling)"),
        ("server:\n  port: eighty\n", "config.yaml: server.port: Input should be a valid integer"),
        ("server:\n  port: 70000\n", "config.yaml: server.port: Input should be less than"),
        ("server:\n  gc_thresholds: [700, 10]\n",
         "server.gc_thresholds: expected three whole numbers, like [10000, 20, 100]"),
        ("server:\n  gc_thresholds: [0, 10, 10]\n",
         "server.gc_thresholds.0: Input should be greater than 0"),
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
        ("store:\n  type: redis\n  cluster: true\n",
         "prefix 'kefu:' has no hash tag: with cluster: true give it one"),
        ("metrics:\n  allow: [10.0.0.0/33]\n",
         "metrics.allow: '10.0.0.0/33' is not a network like 10.0.0.0/8"),
        ("logging:\n  format: xml\n", "logging.format: Input should be 'text' or 'json'"),
        ("server:\n  port: 1\n\tbad: tab\n", "config.yaml:3: not valid YAML"),
        ("- just\n- a list\n", "expected a mapping of settings at the top level"),
        ("business:\n  holidays: [2026-02-14]\n  workdays: [2026-02-14]\n",
         "business: 2026-02-14 is both in holidays and in workdays"),
        ("business:\n  calendar: mars\n", "business.calendar: Input should be 'none' or "
         "'china'"),
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


@pytest.mark.parametrize(
    ("variable", "value", "setting", "expected"),
    [
        ("KEFU_CHANNELS__WECHAT__APP_SECRET", "abc #def", "channels.wechat.app_secret",
         "abc #def"),
        ("KEFU_CHANNELS__WECHAT__TOKEN", "12345678", "channels.wechat.token", "12345678"),
        ("KEFU_CHANNELS__QQ__APP_ID", "102030405", "channels.qq.app_id", "102030405"),
        ("KEFU_STORE__PREFIX", "kefu2:", "store.prefix", "kefu2:"),
        ("KEFU_METRICS__TOKEN", "*secret", "metrics.token", "*secret"),
        ("KEFU_CHANNELS__WECOM__SECRET", "0x1f: [yes]", "channels.wecom.secret", "0x1f: [yes]"),
        ("KEFU_DESK__AUTO_ASSIGN", "false", "desk.auto_assign", False),
        ("KEFU_DESK__AGENT_REPLY_SECONDS", "45.5", "desk.agent_reply_seconds", 45.5),
        ("KEFU_SERVER__GC_THRESHOLDS", "50000,20,100", "server.gc_thresholds",
         (50000, 20, 100)),
        ("KEFU_STORE__SENTINELS", "h1:26379,h2:26379", "store.sentinels",
         ["h1:26379", "h2:26379"]),
        ("KEFU_STORE__SENTINELS", "[h1:26379, h2:26379]", "store.sentinels",
         ["h1:26379", "h2:26379"]),
        ("KEFU_CHANNELS__TELEGRAM__BRIDGE__AGENTS", "{123456789: alice}",
         "channels.telegram.bridge.agents", {"123456789": "alice"}),
        ("KEFU_TEXTS__ZH__FALLBACK", "抱歉 #1", "texts", {"zh": {"fallback": "抱歉 #1"}}),
    ],
)
def test_environment_values_take_the_type_of_their_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
        setting: str, expected: object) -> None:
    monkeypatch.setenv(variable, value)
    config: object = load_config(write(tmp_path, "server:\n  port: 8080\n"))
    for key in setting.split("."):
        config = getattr(config, key)
    assert config == expected


def test_environment_dates_and_hours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_BUSINESS__HOLIDAYS", "2027-01-01, 2027-02-17")
    monkeypatch.setenv("KEFU_BUSINESS__HOURS__MON", "closed")
    monkeypatch.setenv("KEFU_BUSINESS__HOURS__TUE", "09:00-12:00,13:00-18:00")
    config = load_config(write(tmp_path, "business:\n  hours: {mon: 09:00-18:00}\n"))
    assert [str(d) for d in config.business.holidays] == ["2027-01-01", "2027-02-17"]
    assert config.business.hours["mon"] == []
    assert [f"{r.start:%H:%M}-{r.end:%H:%M}" for r in config.business.hours["tue"]] == [
        "09:00-12:00", "13:00-18:00"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KEFU_SERVER__PORT", "eighty", "KEFU_SERVER__PORT: server.port: Input should be a "
         "valid integer"),
        ("KEFU_SERVER__PROT", "1", "KEFU_SERVER__PROT: server.prot: unknown key"),
        ("KEFU_SERVER__PORT__X", "1", "KEFU_SERVER__PORT__X: server.port is a value, not a "
         "section"),
        ("KEFU_STORE__SENTINELS", "[h1:26379", "KEFU_STORE__SENTINELS: expected a list"),
        ("KEFU_WEBHOOKS__ENDPOINTS", "[{name: crm, url: 'https://crm.example', secret: s3cret}]",
         "KEFU_WEBHOOKS__ENDPOINTS: webhooks.endpoints.0.secret: String should have at least "
         "16 characters"),
        ("KEFU_CHANNELS__WECHAT__ENABLED", "true",
         "config.yaml and KEFU_CHANNELS__WECHAT__ENABLED: channels.wechat: enabled, but"),
    ],
)
def test_a_wrong_environment_value_names_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
        expected: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "server:\n  port: 8080\n"))
    message = str(error.value)
    assert expected in message
    assert "\n" not in message
    assert "s3cret" not in message  # a secret is never echoed, from a file or a variable


def test_the_china_calendar_needs_its_package(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "chinese_calendar" else found(name, *a))
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "business:\n  calendar: china\n"))
    assert "business.calendar: china needs the chinese-calendar package: pip install " \
        "'kefu[china]'" in str(error.value)
