"""Heat maps a person can read: a map over the ROI crop pasted back onto the full sagittal slice.

The model saw the square crop `crop_box` = (row_min, col_min, row_max, col_max) of the main slice
(canonical pixels, max exclusive, possibly reaching past the image), resized to its input size.
A map over that input is therefore resized to the crop's size and pasted at the crop's place;
the parts of the crop outside the image are dropped. Drawn with matplotlib's Agg canvas (no
pyplot state, no display needed). `view` (e.g. `zoom_box(crop_box, shape)`) shows only a region
around the crop, enlarged, with the full slice as a small thumbnail beside it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vcpred.imaging.display import display_window

TITLE_LINE_IN = 0.17  # inches a 9 pt title line takes


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


def zoom_box(crop_box, image_shape: tuple[int, int], context: float = 2.0) -> tuple[int, int, int, int]:
    """(r0, c0, r1, c1): a box with the crop box's centre and `context` times its rows and columns,
    moved inside the image where it fits (cut to the image where it does not)."""
    r0, c0, r1, c1 = (int(v) for v in crop_box)
    out = []
    for low, high, size in ((r0, r1, image_shape[0]), (c0, c1, image_shape[1])):
        side = min(max(1, int(round((high - low) * context))), size)
        start = int(round((low + high - side) / 2))
        start = min(max(start, 0), size - side)
        out.append((start, start + side))
    (top, bottom), (left, right) = out
    return top, left, bottom, right


def _rectangle(ax, box, colour: str, style: str, label: str) -> None:
    from matplotlib.patches import Rectangle

    r0, c0, r1, c1 = (float(v) for v in box)
    # pixel centres are at integers, so a box over pixels r0..r1-1 spans r0-0.5 .. r1-0.5
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, edgecolor=colour,
                           linewidth=1.4, linestyle=style, label=label))


def _draw_layers(ax, main_slice, heat_full, roi_box, crop_box, *, aspect, window, alpha, cmap, stretch):
    """Slice, map and boxes on ax; returns (the map's image, the colour bar's label)."""
    ax.imshow(main_slice, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="bilinear")
    shown_map, label = ((stretched(heat_full), "relevance (min to max)") if stretch
                        else (heat_full, "relevance (max = 1)"))
    shown = ax.imshow(np.ma.masked_invalid(shown_map), cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha,
                      aspect=aspect, interpolation="bilinear")
    if crop_box is not None:
        _rectangle(ax, crop_box, "white", "--", "model input (crop)")
    _rectangle(ax, roi_box, "lime", "-", "ROI")
    ax.set_axis_off()
    return shown, label


def overlay_figure(main_slice: np.ndarray, heat_full: np.ndarray, roi_box, crop_box=None, *,
                   spacing: tuple[float, float] | None = None, title: str = "", alpha: float = 0.45,
                   cmap: str = "jet", stretch: bool = True, view=None):
    """A matplotlib Figure: the slice in grey, the map blended on top, the ROI (and crop) boxes.

    main_slice, heat_full: [R, C] (heat NaN where there is no map); spacing: (row_mm, col_mm) so
    the image keeps its physical aspect ratio. stretch: show the map's own min..max over the full
    colour range (rollout maps are often nearly flat because of the residual identity; the
    ordering, not the level, is what a reader can use). view: (r0, c0, r1, c1), max exclusive:
    show only this region of the slice, enlarged (see zoom_box), with the whole slice as a
    thumbnail (the region marked in yellow), the legend and the colour bar in a column beside it.
    """
    if view is not None:
        return _zoomed_figure(main_slice, heat_full, roi_box, crop_box, view, spacing=spacing, title=title,
                              alpha=alpha, cmap=cmap, stretch=stretch)
    from matplotlib.figure import Figure

    rows, cols = main_slice.shape
    aspect = (spacing[0] / spacing[1]) if spacing else 1.0
    height = 6.0
    width = max(3.0, height * cols / (rows * aspect)) + 1.2
    title = wrapped_title(title, width)
    extra = TITLE_LINE_IN * max(0, title.count("\n"))  # room above the image for a title over several lines
    figure = Figure(figsize=(width, height + 0.4 + extra), dpi=110)
    ax = figure.add_axes((0.02, 0.128 / (height + 0.4 + extra), 0.96 - 1.0 / width, 5.76 / (height + 0.4 + extra)))
    shown, label = _draw_layers(ax, main_slice, heat_full, roi_box, crop_box, aspect=aspect,
                                window=display_window(main_slice), alpha=alpha, cmap=cmap, stretch=stretch)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.6)
    if title:  # from the left edge, like the zoomed layout: a long title is never cut at both ends
        figure.suptitle(title, x=0.02, y=1 - 0.06 / (height + 0.4 + extra), ha="left", va="top", fontsize=9)
    colourbar_axes = figure.add_axes((0.97 - 0.9 / width, 0.1, 0.25 / width, 0.7))
    figure.colorbar(shown, cax=colourbar_axes).set_label(label, fontsize=8)
    return figure


def _zoomed_figure(main_slice, heat_full, roi_box, crop_box, view, *, spacing, title, alpha, cmap, stretch):
    """overlay_figure's `view` layout, in inches: the region (image_h tall) on the left; a column
    with the whole-slice thumbnail, the legend and the colour bar on the right; the title wrapped
    over both."""
    from matplotlib.figure import Figure

    top, left, bottom, right = (int(v) for v in view)
    if bottom <= top or right <= left:
        raise ValueError(f"view {tuple(view)} is empty")
    aspect = (spacing[0] / spacing[1]) if spacing else 1.0
    image_h, side, foot = 3.4, 1.45, 0.05
    image_w = min(max(2.0, image_h * (right - left) / ((bottom - top) * aspect)), 2.0 * image_h)
    width = image_w + side + 0.1
    title = wrapped_title(title, width)
    head = 0.45 + TITLE_LINE_IN * max(0, title.count("\n") - 1)  # two lines fit in 0.45 inch
    height = image_h + head + foot
    figure = Figure(figsize=(width, height), dpi=130)

    def box(x, y, w, h):  # inches from the lower left -> figure fractions
        return (x / width, y / height, w / width, h / height)

    ax = figure.add_axes(box(0.05, foot, image_w, image_h))
    window = display_window(main_slice[max(top, 0):bottom, max(left, 0):right])
    shown, label = _draw_layers(ax, main_slice, heat_full, roi_box, crop_box, aspect=aspect, window=window,
                                alpha=alpha, cmap=cmap, stretch=stretch)
    ax.set_xlim(left - 0.5, right - 0.5)
    ax.set_ylim(bottom - 0.5, top - 0.5)
    column = image_w + 0.15
    thumb = figure.add_axes(box(column, foot + 0.56 * image_h, side - 0.15, 0.44 * image_h - 0.2))
    thumb.imshow(main_slice, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="bilinear")
    _rectangle(thumb, view, "yellow", "-", "shown")
    thumb.set_axis_off()
    thumb.set_title("whole slice", fontsize=8, pad=2)
    handles, labels = ax.get_legend_handles_labels()
    anchor = ((column + (side - 0.15) / 2) / width, (foot + 0.48 * image_h) / height)
    figure.legend(handles, labels, loc="center", fontsize=7.5, handlelength=1.6, facecolor="0.35", framealpha=1.0,
                  edgecolor="0.35", labelcolor="white", bbox_to_anchor=anchor)
    colourbar_axes = figure.add_axes(box(column + 0.1, foot + 0.03 * image_h, 0.15, 0.36 * image_h))
    colourbar = figure.colorbar(shown, cax=colourbar_axes)
    colourbar.set_label(label, fontsize=8)
    colourbar.ax.tick_params(labelsize=7.5)
    if title:
        figure.suptitle(title, x=0.05 / width, y=1 - 0.04 / height, ha="left", va="top", fontsize=9)
    return figure


def wrapped_title(title: str, width: float) -> str:
    """title broken into lines that fit a figure `width` inches wide in 9 pt (at the ' - ' first)."""
    import textwrap

    characters = int(width * 72 / (0.56 * 9))  # about how many 9 pt characters fit across
    parts = title.split(" - ") if len(title) > characters else [title]
    return "\n".join(textwrap.fill(part, characters) for part in parts)


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
