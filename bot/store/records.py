"""Turning the store's frozen records into plain values and back, driven by their types.

Both backends use it: SQLite column by column, Redis as JSON. A field added to a record
needs no code here.
"""

from __future__ import annotations

import json
from dataclasses import fields
from enum import Enum
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

R = TypeVar("R")


def base_type(hint: Any) -> type:
    """`str | None` -> str; `dict[str, Any]` -> dict; a class stays itself."""
    origin = get_origin(hint)
    if origin in (dict, list, tuple):
        return origin
    if origin in (Union, UnionType):
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return base_type(inner)
    return hint if isinstance(hint, type) else object


_FIELD_TYPES: dict[type, dict[str, type]] = {}


def field_types(record: type) -> dict[str, type]:
    """Each field's type, worked out once per record class."""
    if record not in _FIELD_TYPES:
        hints = get_type_hints(record)
        _FIELD_TYPES[record] = {f.name: base_type(hints[f.name])
                                for f in fields(record)}
    return _FIELD_TYPES[record]


def plain(value: Any) -> Any:
    """A value as JSON or SQL can hold it: enums by value, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def typed(kind: type, value: Any) -> Any:
    """A plain value back as the field's type."""
    if value is None:
        return None
    if kind in (dict, list) and isinstance(value, str):
        return json.loads(value)
    if kind is tuple:
        return tuple(json.loads(value) if isinstance(value, str) else value)
    if issubclass(kind, Enum):
        return kind(value)
    if kind is bool:
        return bool(value)
    return value


def to_json(record: Any) -> str:
    return json.dumps({name: plain(getattr(record, name)) for name in field_types(type(record))},
                      ensure_ascii=False)


def from_json(record: type[R], text: str | bytes) -> R:
    data = json.loads(text)
    types = field_types(record)
    return record(**{name: typed(types[name], data[name]) for name in types if name in data})
