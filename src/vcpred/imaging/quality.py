"""Warnings about crops that prepare fine but may mislead a model: strongly upscaled (blurry),
near-constant, clipped at the scanner's maximum, or dominated by tissue much brighter than the
vertebra (bright CSF or fat: after normalisation the vertebra comes out dark). Judged on the main
frame, against the whole main slice; recorded in the store index and provenance, shown on the console and
in the QC sheet (vcpred.imaging.qc)."""

from __future__ import annotations

import numpy as np

MAX_UPSCALE = 4.0  # crops enlarged more than this are blurry (cervical vertebrae on 96-224 px frames)
NEAR_CONSTANT = 0.1  # crop intensity range (p1-p99) below this fraction of the slice's is near-constant
CLIPPED_FRACTION = 0.01  # more than 1 % of the crop at the volume's maximum: clipped (saturated)
# The ROI's median in the lowest 15 % of the crop's normalisation range (its 0.5-99.5 percentiles):
# the vertebra comes out dark (0.46 on the real lumbar T2 of tests/data).
DARK_VERTEBRA = 0.15


def upscale_factor(box: list[int] | tuple[int, ...], size: int) -> float:
    """How much Resize enlarges the crop box (top, left, bottom, right) along its shorter side."""
    rows, cols = box[2] - box[0], box[3] - box[1]
    return size / max(1, min(rows, cols))


def crop_warnings(crop: np.ndarray, valid: np.ndarray, main_slice: np.ndarray, volume_max: float,
                  box, roi_box, size: int) -> list[str]:
    """Warnings for the main frame's crop [h, w] (valid: its non-padded pixels; box: where it was cut)
    from main_slice; roi_box (row_min, col_min, row_max, col_max): the vertebra."""
    warnings = []
    factor = upscale_factor(box, size)
    if factor > MAX_UPSCALE:
        rows, cols = box[2] - box[0], box[3] - box[1]
        warnings.append(f"crop of {rows} x {cols} pixels upscaled {factor:.1f}x to {size} px (more than "
                        f"{MAX_UPSCALE:g}x: blurry); the vertebra is small on this series")
    pixels = crop[valid]
    low, high = np.percentile(pixels, (1, 99))
    slice_low, slice_high = np.percentile(main_slice, (1, 99))
    if slice_high > slice_low and (high - low) < NEAR_CONSTANT * (slice_high - slice_low):
        warnings.append(f"near-constant crop: its intensity range is {100 * (high - low) / (slice_high - slice_low):.0f} % "
                        "of the slice's; check the ROI is on the vertebra")
    clipped = float(np.mean(pixels >= volume_max))
    if clipped > CLIPPED_FRACTION:
        warnings.append(f"clipped crop: {100 * clipped:.0f} % of its pixels are at the image's maximum value "
                        "(saturated)")
    clip_low, clip_high = np.percentile(pixels, (0.5, 99.5))
    r0, c0, r1, c1 = roi_box
    position = (float(np.median(main_slice[r0:r1, c0:c1])) - clip_low) / max(clip_high - clip_low, 1e-12)
    if position < DARK_VERTEBRA:
        warnings.append(f"dark vertebra: the ROI's median is at {100 * position:.0f} % of the crop's intensity range "
                        "(much brighter CSF or fat dominates the crop); check the crop in the QC sheet")
    return warnings
