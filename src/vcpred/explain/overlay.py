"""Heat maps a person can read: a map over the ROI crop pasted back onto the full sagittal slice.

The model saw the square crop `crop_box` = (row_min, col_min, row_max, col_max) of the main slice
(canonical pixels, max exclusive, possibly reaching past the image), resized to its input size.
A map over that input is therefore resized to the crop's size and pasted at the crop's place;
the parts of the crop outside the image are dropped. Drawn with matplotlib's Agg canvas (no
pyplot state, no display needed).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def upsample(heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a [h, w] map to shape (rows, cols); values stay in the input's range."""
    tensor = torch.as_tensor(np.asarray(heat, dtype=np.float32))[None, None]
    out = F.interpolate(tensor, size=tuple(int(s) for s in shape), mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def paste_map(heat: np.ndarray, crop_box, image_shape: tuple[int, int]) -> np.ndarray:
    """[R, C] float32 map on the full slice: heat resized onto crop_box, NaN outside the crop.

    heat: [h, w] over the model input (= the square crop); crop_box: (r0, c0, r1, c1), may extend
    past the image (clipped); image_shape: (R, C) of the main slice.
    """
    r0, c0, r1, c1 = (int(v) for v in crop_box)
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"crop_box {tuple(crop_box)} is empty")
    resized = upsample(heat, (r1 - r0, c1 - c0))
    rows, cols = image_shape
    full = np.full((rows, cols), np.nan, dtype=np.float32)
    top, left, bottom, right = max(r0, 0), max(c0, 0), min(r1, rows), min(c1, cols)
    if bottom > top and right > left:
        full[top:bottom, left:right] = resized[top - r0:bottom - r0, left - c0:right - c0]
    return full


def stretched(heat: np.ndarray) -> np.ndarray:
    """heat rescaled to [0, 1] over its finite values (a flat map stays as it is)."""
    finite = heat[np.isfinite(heat)]
    if finite.size == 0 or finite.max() <= finite.min():
        return heat
    return (heat - finite.min()) / (finite.max() - finite.min())


def _window(image: np.ndarray) -> tuple[float, float]:
    """Display window: 1st to 99.5th percentile, robust to a few very bright voxels."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1.0, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def _rectangle(ax, box, colour: str, style: str, label: str) -> None:
    from matplotlib.patches import Rectangle

    r0, c0, r1, c1 = (float(v) for v in box)
    # pixel centres are at integers, so a box over pixels r0..r1-1 spans r0-0.5 .. r1-0.5
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, edgecolor=colour,
                           linewidth=1.4, linestyle=style, label=label))


def overlay_figure(main_slice: np.ndarray, heat_full: np.ndarray, roi_box, crop_box=None, *,
                   spacing: tuple[float, float] | None = None, title: str = "", alpha: float = 0.45,
                   cmap: str = "jet", stretch: bool = True):
    """A matplotlib Figure: the slice in grey, the map blended on top, the ROI (and crop) boxes.

    main_slice, heat_full: [R, C] (heat NaN where there is no map); spacing: (row_mm, col_mm) so
    the image keeps its physical aspect ratio. stretch: show the map's own min..max over the full
    colour range (rollout maps are often nearly flat because of the residual identity; the
    ordering, not the level, is what a reader can use).
    """
    from matplotlib.figure import Figure

    rows, cols = main_slice.shape
    aspect = (spacing[0] / spacing[1]) if spacing else 1.0
    height = 6.0
    width = max(3.0, height * cols / (rows * aspect)) + 1.2
    figure = Figure(figsize=(width, height + 0.4), dpi=110)
    ax = figure.add_axes((0.02, 0.02, 0.96 - 1.0 / width, 0.9))
    low, high = _window(main_slice)
    ax.imshow(main_slice, cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="bilinear")
    shown_map, label = ((stretched(heat_full), "relevance (min to max)") if stretch
                        else (heat_full, "relevance (max = 1)"))
    shown = ax.imshow(np.ma.masked_invalid(shown_map), cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha,
                      aspect=aspect, interpolation="bilinear")
    if crop_box is not None:
        _rectangle(ax, crop_box, "white", "--", "model input (crop)")
    _rectangle(ax, roi_box, "lime", "-", "ROI")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_axis_off()
    ax.legend(loc="lower left", fontsize=7, framealpha=0.6)
    if title:
        ax.set_title(title, fontsize=9)
    colourbar_axes = figure.add_axes((0.97 - 0.9 / width, 0.1, 0.25 / width, 0.7))
    figure.colorbar(shown, cax=colourbar_axes).set_label(label, fontsize=8)
    return figure


def overlay_png(main_slice: np.ndarray, heat_full: np.ndarray, roi_box, crop_box=None, *,
                path: str | Path | None = None, **kwargs) -> bytes:
    """PNG bytes of overlay_figure(...); also written to path when given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = overlay_figure(main_slice, heat_full, roi_box, crop_box, **kwargs)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
