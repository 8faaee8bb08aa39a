"""vcpred's one JSON converter: every file it writes is strict JSON that any reader accepts."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from vcpred.jsonio import ABSENT, Absent, from_dict, json_text, jsonable, to_dict


def test_numpy_paths_and_non_finite_numbers_become_plain_json():
    value = {"auc": np.float32(0.75), "n": np.int64(3), "ok": np.bool_(True), "nan": math.nan,
             "inf": -math.inf, "curve": np.array([0.0, np.nan]), "path": Path("runs/a"), 1: (1, 2)}

    text = json_text(value)

    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert parsed == {"auc": 0.75, "n": 3, "ok": True, "nan": None, "inf": None, "curve": [0.0, None],
                      "path": "runs/a", "1": [1, 2]}
    assert type(jsonable(np.int64(3))) is int and type(jsonable(np.float64(0.5))) is float
    assert text.endswith("}\n")


def test_an_object_json_cannot_represent_is_an_error_not_silent_text():
    with pytest.raises(TypeError):
        json_text({"model": object()})


@dataclass(frozen=True)
class _Inner:
    p: float
    n: int


@dataclass(frozen=True)
class _Record:
    name: str
    values: tuple[float, ...]
    per_split: dict[int, _Inner]
    maybe: _Inner | None
    sometimes: str | Absent = ABSENT
    tags: dict[str, str] = field(default_factory=dict)


def test_records_round_trip_with_nan_as_null_integer_keys_and_absent_keys():
    record = _Record("a", (0.5, math.nan), {0: _Inner(np.float64(0.01), 3)}, None)

    data = to_dict(record)

    assert data == {"name": "a", "values": [0.5, None], "per_split": {"0": {"p": 0.01, "n": 3}}, "maybe": None,
                    "tags": {}}  # `sometimes` is ABSENT: no key
    json_text(data)  # strict JSON
    back = from_dict(_Record, json.loads(json.dumps(data)))
    assert back.per_split == {0: _Inner(0.01, 3)} and back.sometimes is ABSENT and math.isnan(back.values[1])
    assert to_dict(back) == data
    assert from_dict(_Record, data | {"sometimes": "why"}).sometimes == "why"


def test_from_dict_names_where_an_object_does_not_fit():
    good = {"name": "a", "values": [], "per_split": {}, "maybe": None}
    with pytest.raises(ValueError, match=r"_Record: no 'name'"):
        from_dict(_Record, {k: v for k, v in good.items() if k != "name"})
    with pytest.raises(ValueError, match=r"_Record.per_split\['0'\].n: expected int"):
        from_dict(_Record, good | {"per_split": {"0": {"p": 0.1, "n": "3"}}})
    with pytest.raises(ValueError, match=r"key 'x' is not an integer"):
        from_dict(_Record, good | {"per_split": {"x": {"p": 0.1, "n": 3}}})
    with pytest.raises(ValueError, match=r"expected an object"):
        from_dict(_Record, [good])
