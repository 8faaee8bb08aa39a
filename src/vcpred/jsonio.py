"""The one converter to JSON for everything vcpred writes: numpy unwrapped, paths as text, and
NaN/infinity as null (json.dumps would write `NaN`, which is not JSON and breaks other readers);
typed records (frozen dataclasses) to and from JSON objects: `to_dict`, `from_dict`."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def jsonable(value):
    """Plain JSON values: dicts (keys as text), lists, bools, ints, finite floats or None, text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(value, *, indent: int | None = 1) -> str:
    """`value` as strict JSON text (allow_nan=False: a NaN that escaped jsonable is a bug), newline-ended."""
    return json.dumps(jsonable(value), indent=indent, allow_nan=False) + "\n"


# --- typed records <-> JSON objects -------------------------------------------------------------
# A record is a frozen dataclass whose fields are JSON-shaped: str, int, float, bool, None, other
# records, tuple[X, ...], list[X] and dict[str | int, X] of those, and unions of them. It is written
# by `to_dict` (field name = key, in field order) and read back by `from_dict` from its type hints,
# so a file's shape is declared once, by its record type. JSON null in a `float` field reads back as
# NaN (to_dict writes NaN as null); a field holding ABSENT is left out of the object (and a missing
# key reads back as the field's default), for keys a file has only sometimes.


class Absent(enum.Enum):
    """The type of ABSENT: a field whose key the JSON object does not have."""

    ABSENT = "absent"


ABSENT = Absent.ABSENT


def to_dict(record) -> dict:
    """A record as plain JSON values (`jsonable`: NaN as null); ABSENT fields left out."""
    return jsonable(_plain(record))


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if getattr(value, f.name) is not ABSENT}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type[T], data, where: str | None = None) -> T:
    """The record of type `cls` a JSON object holds, every field converted by its type hint;
    ValueError naming the place (`where`, then the keys) when the object does not fit."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: no {f.name!r}")
            continue
        values[f.name] = _typed(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**values)


def _typed(hint, value, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            if float in args:
                return math.nan
        errors = []
        for arg in (a for a in args if a not in (type(None), Absent)):
            try:
                return _typed(arg, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: {_kind(value)} fits none of {hint}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is tuple or origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {_kind(value)}")
        item = args[0] if args else typing.Any
        items = [_typed(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {_kind(value)}")
        key_type, item = args if args else (str, typing.Any)
        return {_key(key_type, k, where): _typed(item, v, f"{where}[{k!r}]") for k, v in value.items()}
    if hint is float:
        if value is None:
            return math.nan
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (str, bool) and isinstance(value, hint):
        return value
    elif hint is type(None) and value is None:
        return None
    raise ValueError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {_kind(value)}")


def _key(key_type, key: str, where: str):
    if key_type is int:
        try:
            return int(key)
        except ValueError:
            raise ValueError(f"{where}: key {key!r} is not an integer") from None
    return key


def _kind(value) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:80]
