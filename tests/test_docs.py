"""The docs say what the code does: commands, settings and protocol fields are all named."""

from __future__ import annotations

import argparse
import re

from bot.cli import build_parser
from tests.conftest import PROJECT
from tests.test_cli import commands


def test_the_architecture_names_every_command() -> None:
    (row,) = [line for line in (PROJECT / "docs" / "architecture.md").read_text(
        encoding="utf-8").splitlines() if line.startswith("| CLI |")]
    named = set(re.findall(r"`([a-z ]+?)(?:/[a-z/]+)?`", row))
    for name, parser in commands(build_parser()):
        has_subcommands = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        if name != "kefu" and not has_subcommands and not name.startswith("kefu agent"):
            assert name.removeprefix("kefu ") in named, name
    assert "`agent add/list/passwd/remove`" in row


def test_the_protocol_names_every_field_the_widget_sends() -> None:
    widget = (PROJECT / "channels" / "webchat" / "static" / "widget.js").read_text(
        encoding="utf-8")
    frames = re.findall(r'\{ type: "([a-z]+)"((?:, [a-z_]+: [^,}]+)*) \}', widget)
    assert {kind for kind, _ in frames} == {"open", "message", "typing"}
    doc = (PROJECT / "docs" / "webchat-protocol.md").read_text(encoding="utf-8")
    client_frames = doc.split("## Client frames")[1].split("## Server frames")[0]
    for kind, fields in frames:
        (row,) = [line for line in client_frames.splitlines()
                  if line.startswith(f'| `{{"type":"{kind}"')]
        for field in re.findall(r"([a-z_]+): ", fields):
            assert f'"{field}":' in row.split("|")[1], (kind, field)
