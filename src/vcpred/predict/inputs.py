"""One patient's inputs from the command line (`vcpred predict`, the viewer): the ROI box, the
clinical values, the PatientRecord. No torch: the command reads them before the models load."""

from __future__ import annotations

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


def make_record(images: dict[str, Path], roi_slice: int, box: tuple[int, int, int, int], clinical: dict,
                patient_id: str = "patient") -> PatientRecord:
    if roi_slice < 0:
        raise RoiError(f"--roi-slice {roi_slice} must be 0 or more")
    return PatientRecord(patient_id=patient_id, set="external", label=None, images=dict(images),
                         roi=Roi(roi_slice, *box), clinical=dict(clinical))
