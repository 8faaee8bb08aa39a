"""One patient's inputs from the command line (`vcpred predict`, the viewer): the ROI box, the
clinical values, the PatientRecord. No torch: the command reads them before the models load."""

from __future__ import annotations

import re
from pathlib import Path

from vcpred.cohort import PatientRecord, Roi
from vcpred.errors import ConfigError, RoiError


def parse_box(text: str) -> tuple[int, int, int, int]:
    """'r0,c0,r1,c1' -> ints (canonical sagittal pixels, max exclusive)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        box = tuple(int(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise RoiError(f"--roi-box {text!r} must be four whole numbers r0,c0,r1,c1 (row/column min and max)")
    if box[0] >= box[2] or box[1] >= box[3] or min(box) < 0:
        raise RoiError(f"--roi-box {text!r}: need 0 <= r0 < r1 and 0 <= c0 < c1")
    return box  # type: ignore[return-value]


def parse_clinical(text: str | None) -> dict[str, str]:
    """'age=74,sex=F' -> {'age': '74', 'sex': 'F'} (values typed later, per the model's columns); a name
    given twice is an error (which value was meant?)."""
    values: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--clinical item {item!r} must be NAME=VALUE, e.g. age=74,sex=F")
        key = key.strip()
        if key in values:
            raise ConfigError(f"--clinical gives {key} twice ({key}={values[key]} and {key}={value.strip()}); "
                              "give each value once")
        values[key] = value.strip()
    return values


# Short text beginning with a letter or digit: it goes into the heat map's title and the Secondary
# Capture's comments, and a spreadsheet never runs it as a formula (=, +, -, @ cannot start it).
LEVEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./+-]*")
MAX_LEVEL = 24


def parse_level(text: str | None) -> str | None:
    """The vertebral level of the fracture as given (`--level`, the viewer's field), e.g. 'L1', 'T12',
    'T12-L1'; None when empty (the level is optional)."""
    level = (text or "").strip()
    if not level:
        return None
    if len(level) > MAX_LEVEL or not LEVEL.fullmatch(level):
        raise ConfigError(f"vertebral level {level[:40]!r} must be short text such as L1, T12 or T12-L1: letters, "
                          f"digits, spaces and . / + - (not first), at most {MAX_LEVEL} characters")
    return level


def make_record(images: dict[str, Path], roi_slice: int, box: tuple[int, int, int, int], clinical: dict,
                patient_id: str = "patient", level: str | None = None) -> PatientRecord:
    if roi_slice < 0:
        raise RoiError(f"--roi-slice {roi_slice} must be 0 or more")
    return PatientRecord(patient_id=patient_id, set="external", label=None, images=dict(images),
                         roi=Roi(roi_slice, *box), clinical=dict(clinical), level=level)
