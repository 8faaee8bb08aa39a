"""vcpred's one JSON converter: every file it writes is strict JSON that any reader accepts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vcpred.jsonio import json_text, jsonable


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
