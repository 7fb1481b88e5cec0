"""Canned replies for agents (YAML beside the knowledge base) and the vague-reply rule.

A good desk never answers 差不多, 不清楚 or a bare 嗯: the console warns before such a reply
goes out, and `kefu kb check` rejects FAQ answers and canned replies that contain them.

    replies:
      - shortcut: check        # typed as /check in the console's reply box
        text: 正在为您查询，请稍候。
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.config import DeskConfig
from bot.text import normalize

_SHORTCUT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True, slots=True)
class CannedReply:
    shortcut: str
    text: str
    source: str  # file:line


def vague_phrases(text: str, config: DeskConfig) -> list[str]:
    """The banned phrases in `text`, and the whole text when it is only a curt word."""
    folded = text.casefold()
    found = [p for p in config.banned_phrases if p.casefold() in folded]
    if normalize(text) in {normalize(c) for c in config.curt_replies}:
        found.append(text.strip())
    return found


def load_canned_replies(path: Path) -> tuple[list[CannedReply], list[str]]:
    """The good canned replies in `path` (none when the file does not exist), and every
    problem with file:line, so that one broken reply never hides the others."""
    if not path.exists():
        return [], []
    name = path.name
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        return [], [f"{name}: not UTF-8 text; save the file as UTF-8"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        return [], [f"{name}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]
    if root is None:
        return [], []
    items = _mapping(root).get("replies") if isinstance(root, yaml.MappingNode) else None
    if not isinstance(items, yaml.SequenceNode):
        return [], [f"{name}:{root.start_mark.line + 1}: expected `replies:` with a list of "
                    "{shortcut, text}"]
    problems: list[str] = []
    replies: list[CannedReply] = []
    seen: dict[str, str] = {}
    for node in items.value:
        where = f"{name}:{node.start_mark.line + 1}"
        fields = _mapping(node) if isinstance(node, yaml.MappingNode) else {}
        shortcut, text = _text(fields.get("shortcut")), _text(fields.get("text"))
        unknown = set(fields) - {"shortcut", "text"}
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                            "(expected shortcut, text)")
        if not shortcut or not _SHORTCUT.match(shortcut):
            problems.append(f"{where}: shortcut must be 1-32 letters, digits, - or _")
        elif shortcut in seen:
            problems.append(f"{where}: shortcut {shortcut!r} is also at {seen[shortcut]}")
        if not text:
            problems.append(f"{where}: text is empty")
        if shortcut and text and not unknown and shortcut not in seen:
            seen[shortcut] = where
            replies.append(CannedReply(shortcut, text, where))
    return replies, problems


def _mapping(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    return {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _text(node: yaml.Node | None) -> str:
    return str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
