"""Paint everything around the bones: trunk outline, muscles, fat, vessels, canal and its contents.

Layers follow the curved spinal axis: for each row y the axis sits at column z_axis(y) with tilt
phi(y); v = (z - z_axis) cos(phi) is the distance in front (-) or behind (+) the axis, and the
posterior wall of the bodies is at v = half-depth(y).
"""

from __future__ import annotations

import numpy as np

from vcpred.synth.anatomy import Spine
from vcpred.synth.canvas import Canvas
from vcpred.synth.scanner import smooth_noise
from vcpred.synth.tissues import (ABDOMEN, AIR, BOWEL_FLUID, CORD, CSF, FAT, GAS, INTERSPINOUS, IVC,
                                  LIGAMENT, LIVER, LUNG, MEDIASTINUM, MESENTERY, MUSCLE, NERVE, SKIN,
                                  VESSEL)

SAC_HALFWIDTH = 8.0      # mm, lateral half-width of the thecal sac


def axis_coords(cv: Canvas, spine: Spine):
    """v [1, r, c], lateral X [k, r, 1] and half-depth pw [1, r, 1] for the whole volume, in mm."""
    z_axis, phi, half_depth = spine.centreline(cv.ys.astype(np.float64))
    v = (cv.zs[None, :] - z_axis[:, None].astype(np.float32)) * np.cos(phi)[:, None].astype(np.float32)
    X = cv.xs[:, None, None] - spine.midline_x(cv.ys).astype(np.float32)[None, :, None]
    return v[None], X, half_depth.astype(np.float32)[None, :, None]


def paint_trunk(cv: Canvas, spine: Spine, rng: np.random.Generator) -> None:
    """Abdomen in front, muscles, subcutaneous fat, skin and air behind; chest above the diaphragm."""
    v, X, pw = axis_coords(cv, spine)
    full = (slice(None),) * 3
    level_y = {vb.level: vb.centre[0] for vb in spine.vertebrae}
    cv.paint(full, np.ones(cv.label.shape, bool), ABDOMEN)
    _viscera(cv, spine, v, X, pw, level_y, rng)
    lam0 = pw + 1.5 + spine.canal_ap + 2.0
    fat0 = lam0 + spine.muscle_mm
    prevertebral = float(rng.uniform(2.5, 7.0))
    cv.paint(full, (v > -pw - prevertebral) & (v < -pw), FAT)
    psoas = (cv.ys[None, :, None] > level_y["T12"]) & (np.abs(X) > 14) & (v > -pw - 22)
    cv.paint(full, psoas | ((v >= -pw) & (v < fat0)), MUSCLE)
    above_sacrum = cv.ys[None, :, None] < spine.vertebrae[-1].centre[0] + 10
    cv.paint(full, (v > lam0) & (v < lam0 + 34) & (np.abs(X) < 4) & above_sacrum, INTERSPINOUS)
    skin0 = fat0 + spine.fat_mm
    # Behind the spinous tips the midline has no muscle: subcutaneous fat starts there.
    cv.paint(full, (v >= fat0) & (v < skin0) | (v >= lam0 + 32) & (v < skin0) & (np.abs(X) < 4), FAT)
    cv.paint(full, (v >= skin0) & (v < skin0 + 2.5), SKIN)
    cv.paint(full, v >= skin0 + 2.5, AIR)
    _vessels(cv, spine, v, X, pw, level_y)


def _viscera(cv: Canvas, spine: Spine, v, X, pw, level_y: dict[str, float],
             rng: np.random.Generator) -> None:
    """Diaphragm dome (lung/heart above, liver below) and bowel loops of fluid, gas and fat."""
    full = (slice(None),) * 3
    Y = cv.ys[None, :, None]
    front = v < -pw - 8
    # The dome rises anteriorly and laterally; the posterior recess reaches down to about T12/L1.
    depth = np.clip(-(v + pw), 0, None)                               # mm in front of the bodies
    dome = level_y["T12"] + rng.uniform(-10, 15) - 0.0035 * depth ** 2 - 0.3 * np.abs(X)
    chest = front & (Y < dome)
    cv.paint(full, chest & (np.abs(X) > 9), LUNG)
    cv.paint(full, chest & (np.abs(X) <= 9), MEDIASTINUM)
    cv.paint(full, front & (Y >= dome) & (Y < dome + rng.uniform(45, 70)), LIVER)
    cell = max(int(round(12 / cv.geometry.pixel_mm)), 2)              # loops of about 2-3 cm
    field = smooth_noise(rng, cv.label.shape, cell=cell)
    belly = cv.label == ABDOMEN.id
    cv.paint(full, belly & (field > 0.75), BOWEL_FLUID)
    cv.paint(full, belly & (field < -1.1), GAS)
    cv.paint(full, belly & (field > 0.55) & (field <= 0.75), MESENTERY)


def _vessels(cv: Canvas, spine: Spine, v, X, pw, level_y: dict[str, float]) -> None:
    """Aorta (flow void) left-anterior of the spine down to L4; vena cava right-anterior."""
    full = (slice(None),) * 3
    Y = cv.ys[None, :, None]
    r = 10.5
    aorta = ((v + pw + 3 + r) / r) ** 2 + ((X - 13) / r) ** 2 <= 1
    cv.paint(full, aorta & (Y < level_y["L4"]), VESSEL)
    r = 10.0
    cava = ((v + pw + 4 + r) / r) ** 2 + ((X + 18) / r) ** 2 <= 1
    cv.paint(full, cava & (Y > level_y["T12"]) & (Y < level_y["L5"]), IVC)


def paint_canal(cv: Canvas, spine: Spine) -> None:
    """Posterior longitudinal ligament, epidural fat, thecal sac (CSF), cord/conus and cauda."""
    v, X, pw = axis_coords(cv, spine)
    full = (slice(None),) * 3
    Y = cv.ys[None, :, None]
    ap = spine.canal_ap
    centre = pw + 1.5 + ap / 2
    sacrum = spine.vertebrae[-1].centre[0]
    taper = np.clip((sacrum + 22 - Y) / 30, 0.15, 1)                 # sac ends at S2
    cv.paint(full, (v > pw - 0.5) & (v < pw + 1.5 + ap + 2) & (np.abs(X) < 11), FAT)
    cv.paint(full, (v > pw - 0.5) & (v < pw + 1.6) & (np.abs(X) < 12), LIGAMENT)  # meets the sac
    sac = ((v - centre) / (ap / 2 * taper)) ** 2 + (X / SAC_HALFWIDTH) ** 2 <= 1
    cv.paint(full, sac, CSF)
    size = np.sqrt(np.clip((spine.conus_y - Y) / 22, 0, 1))          # conus tapers to its tip
    cord = ((v - centre + 0.8) / (3.6 * size + 1e-3)) ** 2 + (X / (4.8 * size + 1e-3)) ** 2 <= 1
    cv.paint(full, cord & (size > 0), CORD)
    roots = np.zeros(np.broadcast_shapes(v.shape, X.shape), bool)
    for j, x_root in enumerate((-3.5, -1.2, 1.2, 3.5)):   # roots lie dependent (posterior)
        roots |= ((v - centre - 1.5 - 0.6 * j) / 0.9) ** 2 + ((X - x_root) / 1.3) ** 2 <= 1
    cv.paint(full, roots & sac & (Y > spine.conus_y - 8), NERVE)
