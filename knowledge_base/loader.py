"""Load a folder of FAQ YAML files, reporting every problem with file:line.

A file is either a list of entries or a mapping with `entries:` (and an optional `lang:`
default for them). An entry has `id`, `questions`, `answer`, and optionally `tags`, `lang`
and `handoff`. Staff edit these files by hand, so problems are collected, never raised one
at a time: a staff member fixes everything in one pass.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.config import AnswerTemplateLimits
from bot.errors import KnowledgeBaseError
from bot.text import normalize
from knowledge_base.templates import AnswerTemplates

ENTRY_KEYS = ("id", "questions", "answer", "tags", "lang", "handoff")
LANGUAGES = ("zh", "en")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    questions: tuple[str, ...]
    answer: str
    tags: tuple[str, ...]
    lang: str | None
    handoff: bool
    source: str  # "file.yaml:12", for messages staff can act on


def faq_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_entries(folder: Path, templates: AnswerTemplates | None = None) -> list[Entry]:
    """Every entry in `folder`, or `KnowledgeBaseError` listing every problem found."""
    entries, problems = read_entries(folder, templates)
    if problems:
        raise KnowledgeBaseError(problems)
    return entries


def read_entries(folder: Path, templates: AnswerTemplates | None = None
                 ) -> tuple[list[Entry], list[str]]:
    """The entries that are valid, and every problem found: `kefu kb check` goes on to
    check what did load, so that one broken entry does not hide the others' problems.
    Answer templates are checked under `templates`' limits (the default ones if None)."""
    templates = templates or AnswerTemplates(AnswerTemplateLimits())
    if not folder.is_dir():
        return [], [f"{folder}: knowledge-base folder not found"]
    problems: list[str] = []
    entries: list[Entry] = []
    ids: list[tuple[str, str]] = []  # every id seen, valid entry or not, with where it is
    edited: dict[str, int] = {}  # file name -> modification time
    files = faq_files(folder)
    for path in files:
        entries.extend(_load_file(path, folder, problems, ids, templates))
        with contextlib.suppress(OSError):
            edited[_name(path, folder)] = path.stat().st_mtime_ns
    if not files:
        problems.append(f"{folder}: no .yaml files found")
    elif not entries and not problems:
        problems.append(f"{folder}: the files hold no entries")
    problems.extend(_duplicate_ids(ids, edited))
    problems.extend(_shared_questions(entries))
    return entries, problems


def _name(path: Path, folder: Path) -> str:
    """How messages name a file: from the folder's parent, as in "kb/returns.yaml"."""
    return str(path.relative_to(folder.parent)) if folder.parent != path else str(path)


def _load_file(
    path: Path, folder: Path, problems: list[str], ids: list[tuple[str, str]],
    templates: AnswerTemplates,
) -> Iterator[Entry]:
    name = _name(path, folder)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{name}: not UTF-8 text (byte {exc.start}); save the file as UTF-8")
        return
    except OSError as exc:
        problems.append(f"{name}: cannot read: {exc.strerror}")
        return
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problems.append(f"{name}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}")
        return
    finally:
        loader.dispose()
    if root is None:
        return  # an empty file is allowed: staff may be starting a topic
    default_lang: str | None = None
    if isinstance(root, yaml.MappingNode):
        pairs = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        for key in pairs:
            if key not in ("entries", "lang", "topic"):
                problems.append(f"{name}:{root.start_mark.line + 1}: unknown top-level key {key!r}"
                                " (expected entries, lang, topic)")
        if "lang" in pairs:
            default_lang = _scalar(pairs["lang"])
            if default_lang not in LANGUAGES:
                problems.append(f"{name}:{_line(pairs['lang'])}: lang must be one of {LANGUAGES}")
                default_lang = None
        if "entries" not in pairs:
            problems.append(f"{name}:{_line(root)}: expected `entries:` with a list of entries")
            return
        root = pairs["entries"]
    if not isinstance(root, yaml.SequenceNode):
        problems.append(f"{name}:{_line(root)}: expected a list of entries (lines starting with -)")
        return
    for node in root.value:
        entry = _entry(node, name, default_lang, problems, ids, templates)
        if entry is not None:
            yield entry


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _entry(
    node: yaml.Node,
    name: str,
    default_lang: str | None,
    problems: list[str],
    ids: list[tuple[str, str]],
    templates: AnswerTemplates,
) -> Entry | None:
    where = f"{name}:{_line(node)}"
    if not isinstance(node, yaml.MappingNode):
        problems.append(f"{where}: an entry must be a mapping with id, questions and answer")
        return None
    fields: dict[str, yaml.Node] = {}
    ok = True
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in fields:
            problems.append(f"{name}:{_line(key_node)}: key {key!r} appears twice in one entry")
            ok = False
        elif key not in ENTRY_KEYS:
            hint = difflib.get_close_matches(key, ENTRY_KEYS, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(f"{name}:{_line(key_node)}: unknown key {key!r}{suggestion}")
            ok = False
        fields[key] = value_node
    if "id" in fields and isinstance(fields["id"], yaml.ScalarNode):
        ids.append((str(fields["id"].value), where))
    for required in ("id", "questions", "answer"):
        if required not in fields:
            problems.append(f"{where}: entry is missing {required!r}")
            ok = False
    if not ok:
        return None
    values = {key: _scalar(value) for key, value in fields.items()}
    entry_id = values["id"]
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        problems.append(f"{name}:{_line(fields['id'])}: id must be letters, digits, - _ or . "
                        f"(got {entry_id!r})")
        ok = False
    questions = values["questions"]
    if isinstance(questions, str):
        questions = [questions]
    if not isinstance(questions, list) or not questions:
        problems.append(f"{name}:{_line(fields['questions'])}: questions must be a list of at "
                        "least one question")
        ok = False
    else:
        for i, q in enumerate(questions):
            if not isinstance(q, str) or not normalize(q):
                line = _line(fields["questions"].value[i]) if isinstance(
                    fields["questions"], yaml.SequenceNode) else _line(fields["questions"])
                problems.append(f"{name}:{line}: question {i + 1} is empty or not text")
                ok = False
    answer = values["answer"]
    if not isinstance(answer, str) or not answer.strip():
        problems.append(f"{name}:{_line(fields['answer'])}: answer is empty")
        ok = False
    else:
        problem = templates.problem(answer)
        if problem:
            problems.append(f"{name}:{_line(fields['answer'])}: answer template: {problem}")
            ok = False
    tags = values.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(f"{name}:{_line(fields['tags'])}: tags must be a list of words")
        ok = False
    lang = values.get("lang", default_lang)
    if lang is not None and lang not in LANGUAGES:
        problems.append(f"{name}:{_line(fields['lang'])}: lang must be one of {LANGUAGES}")
        ok = False
    handoff = values.get("handoff", False)
    if not isinstance(handoff, bool):
        problems.append(f"{name}:{_line(fields['handoff'])}: handoff must be true or false")
        ok = False
    if not ok:
        return None
    return Entry(
        id=entry_id,
        questions=tuple(q.strip() for q in questions),
        answer=answer.strip(),
        tags=tuple(tags),
        lang=lang,
        handoff=handoff,
        source=where,
    )


def _duplicate_ids(ids: list[tuple[str, str]], edited: dict[str, int]) -> list[str]:
    """A reused id is blamed on the copy that came last: in the file edited last, else
    further down. That is the one staff just added, not the entry that was there first."""
    order = {where: n for n, (_, where) in enumerate(ids)}

    def age(where: str) -> tuple[int, int]:
        return edited.get(where.rsplit(":", 1)[0], 0), order[where]

    places: dict[str, list[str]] = {}
    for entry_id, where in ids:
        places.setdefault(entry_id, []).append(where)
    problems = []
    for entry_id, found in places.items():
        if len(found) < 2:
            continue
        first, *later = sorted(found, key=age)
        for where in later:
            problems.append(f"{where}: duplicate id {entry_id!r} (first used at {first}); "
                            "give this entry another id")
    return problems


def _shared_questions(entries: list[Entry]) -> list[str]:
    problems = []
    first: dict[str, Entry] = {}
    for entry in entries:
        for question in entry.questions:
            seen = first.setdefault(normalize(question), entry)
            if seen.id != entry.id:
                problems.append(f"{entry.source}: question {question!r} is also in entry "
                                f"{seen.id!r} ({seen.source}); keep it in one entry")
    return problems
