"""A volume being painted: tissue labels plus T1 and T2 base signal, on the canonical grid.

Arrays are [slice, row, col] (canonical sagittal display). Physical coordinates in mm:
x of slice k = (k - (n_slices - 1) / 2) * spacing (+ = patient left), y of row r = r * pixel
(+ = inferior), z of column c = c * pixel (+ = posterior).
"""

from __future__ import annotations

import numpy as np

from vcpred.synth.sites import Geometry
from vcpred.synth.tissues import AIR, Tissue


class Canvas:
    def __init__(self, geometry: Geometry):
        shape = geometry.shape
        self.geometry = geometry
        self.label = np.full(shape, AIR.id, dtype=np.uint8)
        self.t1 = np.zeros(shape, dtype=np.float32)
        self.t2 = np.zeros(shape, dtype=np.float32)
        self.fracture = np.zeros(shape, dtype=bool)   # voxels of the acutely fractured body
        p = geometry.pixel_mm
        self.xs = ((np.arange(shape[0]) - (shape[0] - 1) / 2) * geometry.spacing_mm).astype(np.float32)
        self.ys = (np.arange(shape[1]) * p).astype(np.float32)
        self.zs = (np.arange(shape[2]) * p).astype(np.float32)

    def box(self, y: tuple[float, float], z: tuple[float, float], x: tuple[float, float]):
        """Index box covering a mm range, with its coordinate grids broadcastable to the box.

        Returns (slices, X [k,1,1], Y [1,r,1], Z [1,1,c]) or None when the range misses the volume.
        """
        p, dx = self.geometry.pixel_mm, self.geometry.spacing_mm
        n_k, n_r, n_c = self.label.shape
        k0 = max(int(np.floor(x[0] / dx + (n_k - 1) / 2)), 0)
        k1 = min(int(np.ceil(x[1] / dx + (n_k - 1) / 2)) + 1, n_k)
        r0, r1 = max(int(y[0] // p), 0), min(int(y[1] // p) + 2, n_r)
        c0, c1 = max(int(z[0] // p), 0), min(int(z[1] // p) + 2, n_c)
        if k0 >= k1 or r0 >= r1 or c0 >= c1:
            return None
        sl = (slice(k0, k1), slice(r0, r1), slice(c0, c1))
        return sl, self.xs[sl[0], None, None], self.ys[None, sl[1], None], self.zs[None, None, sl[2]]

    def paint(self, sl: tuple[slice, ...], mask: np.ndarray, tissue: Tissue,
              t1: float | np.ndarray | None = None, t2: float | np.ndarray | None = None) -> None:
        """Set the voxels of `mask` (broadcastable to the box) to a tissue, optionally with custom
        signal. np.copyto with `where` avoids materialising broadcast masks (fast)."""
        np.copyto(self.label[sl], np.uint8(tissue.id), where=mask)
        for volume, value, default in ((self.t1, t1, tissue.t1), (self.t2, t2, tissue.t2)):
            value = default if value is None else value
            np.copyto(volume[sl], np.asarray(value, dtype=np.float32), where=mask)

    def blend(self, sl: tuple[slice, ...], weight: np.ndarray, tissue: Tissue) -> None:
        """Mix a tissue into the box with weight 0..1 (graded edema); label where weight > 0.5."""
        weight = np.broadcast_to(weight, self.label[sl].shape).astype(np.float32)
        self.t1[sl] += weight * (tissue.t1 - self.t1[sl])
        self.t2[sl] += weight * (tissue.t2 - self.t2[sl])
        self.label[sl][weight > 0.5] = tissue.id


def local_coords(Y: np.ndarray, Z: np.ndarray, centre: tuple[float, float], phi: float):
    """(u, v) in mm in a frame centred at `centre` with tilt phi (u + inferior, v + posterior)."""
    dy, dz = Y - centre[0], Z - centre[1]
    c, s = np.float32(np.cos(phi)), np.float32(np.sin(phi))
    return dy * c + dz * s, -dy * s + dz * c


def frame_box(cv: Canvas, centre: tuple[float, float], phi: float, u: tuple[float, float],
              v: tuple[float, float], x: tuple[float, float]):
    """Canvas.box around a rectangle given in a tilted local frame (u, v ranges in mm)."""
    c, s = np.cos(phi), np.sin(phi)
    corners = [(centre[0] + a * c - b * s, centre[1] + a * s + b * c) for a in u for b in v]
    ys, zs = zip(*corners)
    return cv.box((min(ys), max(ys)), (min(zs), max(zs)), x)
