"""The ROI of a request: slice and box as JSON numbers, checked against the volume (shared by the
viewer's prediction and the annotation mode; no model needed)."""

from __future__ import annotations

import math

from vcpred.serve.errors import RoiInputError


def whole_number(value, what: str) -> int:
    """A JSON integer (or an integral float such as 7.0); never a boolean, a string or 1e400."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RoiInputError(what)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise RoiInputError(what)
    if abs(value) > 2**31:
        raise RoiInputError(what)
    return int(value)


def read_roi(body: dict) -> tuple[int, tuple[int, int, int, int]]:
    """(slice, box) of a request body's 'slice' and 'box' fields, each checked for its JSON type."""
    roi_slice = whole_number(body.get("slice"), "draw the ROI: 'slice' must be a whole number (the ROI slice, "
                                                "counting from 0)")
    box_message = "draw the ROI: 'box' must be four whole numbers [row_min, col_min, row_max, col_max]"
    raw_box = body.get("box")
    if not isinstance(raw_box, list) or len(raw_box) != 4:
        raise RoiInputError(box_message)
    return roi_slice, tuple(whole_number(v, box_message) for v in raw_box)


def check_box(roi_slice: int, box: tuple[int, int, int, int], shape: tuple[int, int, int]) -> None:
    slices, rows, cols = shape
    r0, c0, r1, c1 = box
    if not 0 <= roi_slice < slices:
        raise RoiInputError(f"ROI slice {roi_slice} is outside the volume (slices 0 to {slices - 1})")
    if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
        raise RoiInputError(f"ROI box rows {r0}-{r1}, columns {c0}-{c1} is empty or outside the "
                            f"{rows} x {cols} image; draw it around the vertebral body")
    if r1 - r0 < 4 or c1 - c0 < 4:
        raise RoiInputError("the ROI box is smaller than 4 pixels; draw it around the whole vertebral body")
