"""How an MR slice is shown: one display window for the report's heat maps and the viewer's page
(numpy only, so the model-free viewer of `vcpred annotate` does not load torch)."""

from __future__ import annotations

import numpy as np


def display_window(image: np.ndarray) -> tuple[float, float]:
    """Display window: 1st to 99.5th percentile, robust to a few very bright voxels."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1.0, 99.5])
    return float(low), float(high if high > low else low + 1.0)
