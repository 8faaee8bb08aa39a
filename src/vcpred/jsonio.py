"""The one converter to JSON for everything vcpred writes: numpy unwrapped, paths as text, and
NaN/infinity as null (json.dumps would write `NaN`, which is not JSON and breaks other readers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


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
