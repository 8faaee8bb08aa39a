"""Paint vertebral bodies (with the acute fracture), discs and posterior elements on a Canvas.

Shapes are super-ellipsoids in each structure's local frame (canvas.local_coords): boxy in the
sagittal plane (exponent 6), round across (exponent 2), so parasagittal slices cut smaller bodies.
"""

from __future__ import annotations

import numpy as np

from vcpred.synth.anatomy import Disc, Spine, Vertebra
from vcpred.synth.canvas import Canvas, frame_box, local_coords
from vcpred.synth.lesion import Lesion
from vcpred.synth.tissues import (ANNULUS, BASIVERTEBRAL, CLEFT, CORTEX, EDEMA, FACET, MARROW,
                                  NUCLEUS)

CORTEX_MM = 0.9


def _body_frame(cv: Canvas, spine: Spine, vb: Vertebra, extra: float = 0.0):
    """Box around a body and its local (u, v, X) grids; None when outside the volume."""
    reach = 0.8 * max(vb.height, vb.depth) + extra
    x0 = float(spine.midline_x(vb.centre[0]))
    found = cv.box((vb.centre[0] - reach, vb.centre[0] + reach),
                   (vb.centre[1] - reach, vb.centre[1] + reach), (x0 - vb.halfwidth, x0 + vb.halfwidth))
    if found is None:
        return None
    sl, X, Y, Z = found
    u, v = local_coords(Y, Z, vb.centre, vb.phi)
    return sl, u, v, X - np.float32(x0)


def paint_body(cv: Canvas, spine: Spine, vb: Vertebra, lesion: Lesion, rng: np.random.Generator) -> None:
    """Cortical shell with endplates, marrow, basivertebral vein; the lesion when acute."""
    frame = _body_frame(cv, spine, vb, extra=8.0)
    if frame is None:
        return
    sl, u, v, X = frame
    half_d, W = vb.depth / 2, vb.halfwidth
    t = np.clip(v / half_d, -1.5, 1.5)
    top = -vb.height / 2 + vb.superior_loss(np.clip(t, -1, 1))
    bottom = vb.height / 2 - vb.inferior_loss(np.clip(t, -1, 1))
    half_h = (bottom - top) / 2
    w = (u - (top + bottom) / 2) / half_h
    waist = 1.0 - 0.05 * np.clip(1 - w * w, 0, 1)          # slightly concave front and back walls
    tw = t / waist
    lateral = (X / W) ** 2
    outer = (w ** 6 + tw ** 6) + lateral <= 1
    inner = ((w * half_h / (half_h - CORTEX_MM)) ** 6 + (tw * half_d / (half_d - CORTEX_MM)) ** 6
             + (X / (W - CORTEX_MM)) ** 2 <= 1)
    cv.paint(sl, outer, CORTEX)
    cv.paint(sl, inner, MARROW, t1=MARROW.t1 * vb.marrow, t2=MARROW.t2 * vb.marrow)
    vein = inner & (t > 0.8) & (np.abs(w) < 0.14) & (np.abs(X) < 3.0)
    cv.paint(sl, vein, BASIVERTEBRAL)
    if vb.acute:
        depth = u - top                                     # mm below the superior endplate
        _paint_lesion(cv, sl, inner, depth, 2 * half_h, t, X, vb, lesion, rng)
        cv.fracture[sl] |= outer


def _paint_lesion(cv: Canvas, sl, inner, depth, height, t, X, vb: Vertebra, lesion: Lesion,
                  rng: np.random.Generator) -> None:
    """Edema, impaction band, fluid cleft and retropulsion inside the acute body."""
    phase = rng.uniform(0, 2 * np.pi, size=3).astype(np.float32)
    if vb.biconcave:  # both endplates fractured: edema grows from both
        depth = np.minimum(depth, height - depth)
        reach = lesion.edema * height / 2
    else:
        reach = lesion.edema * height
    ragged = 2.0 * np.sin(2.6 * t + phase[0]) * np.cos(0.25 * X + phase[1])
    along = np.clip((reach + ragged - depth) / 3.0 + 0.5, 0, 1)
    spread = vb.halfwidth * (0.45 + 0.55 * lesion.edema)
    across = np.clip((spread - np.abs(X - lesion.edema_x_mm)) / 3.0 + 0.5, 0, 1)
    cv.blend(sl, np.where(inner, along * across, 0), EDEMA)
    band = inner & (depth > 1.5) & (depth < 3.2) & (t < 0.6) & (across > 0.5)
    cv.t1[sl][band] *= 0.55
    cv.t2[sl][band] *= 0.55
    if lesion.cleft:
        centre = lesion.cleft_depth * height
        thick = lesion.cleft_thickness_mm / 2 * (1 + 0.35 * np.sin(3.0 * t + phase[2]))
        body = ((depth - centre) / thick) ** 2 + ((t + 0.15) / 0.7) ** 4
        shape = body + ((X - lesion.cleft_x_mm) / lesion.cleft_halfwidth_mm) ** 2 <= 1
        cv.paint(sl, shape & inner, CLEFT)


def paint_retropulsion(cv: Canvas, spine: Spine, lesion: Lesion) -> None:
    """Posterior wall of the acute body bulging into the canal (painted over the thecal sac)."""
    vb = spine.fracture
    if not lesion.posterior_wall:
        return
    frame = _body_frame(cv, spine, vb, extra=8.0)
    if frame is None:
        return
    sl, u, v, X = frame
    top = -vb.height / 2 + vb.superior_loss(1.0)
    height = vb.height / 2 - vb.inferior_loss(1.0) - top
    bump = np.clip(1 - ((u - (top + 0.35 * height)) / (0.3 * height)) ** 2, 0, 1)
    edge = vb.depth / 2 + lesion.retropulsion_mm * bump
    shape = (v > vb.depth / 2 - 2) & (v < edge) & (bump > 0) & (np.abs(X) < 0.65 * vb.halfwidth)
    cv.paint(sl, shape, CORTEX)
    cv.paint(sl, shape & (v < edge - CORTEX_MM), EDEMA)
    cv.fracture[sl] |= shape


def paint_disc(cv: Canvas, spine: Spine, disc: Disc) -> None:
    """Annulus (dark on T2) and nucleus (bright on T2 when hydrated), with an intranuclear cleft."""
    reach = 0.6 * disc.depth + disc.fill + disc.height
    x0 = float(spine.midline_x(disc.centre[0]))
    found = cv.box((disc.centre[0] - reach, disc.centre[0] + reach),
                   (disc.centre[1] - reach, disc.centre[1] + reach), (x0 - disc.halfwidth, x0 + disc.halfwidth))
    if found is None:
        return
    sl, X, Y, Z = found
    X = X - np.float32(x0)
    u, v = local_coords(Y, Z, disc.centre, disc.phi)
    half_h = disc.height / 2 + disc.fill
    t = v / (disc.depth / 2 + 1.0)                       # bulges 1 mm past the bodies
    cv.paint(sl, (u / half_h) ** 4 + t ** 6 + (X / disc.halfwidth) ** 2 <= 1, ANNULUS)
    core_h = max(half_h - 1.4, 1.0)
    nucleus = (u / core_h) ** 2 + ((t + 0.05) / 0.62) ** 2 + (X / (0.65 * disc.halfwidth)) ** 2 <= 1
    signal = ANNULUS.t2 + (NUCLEUS.t2 - ANNULUS.t2) * disc.hydration
    cv.paint(sl, nucleus, NUCLEUS, t2=signal)
    if disc.hydration < 0.85:  # the dark intranuclear cleft of adult discs
        cv.t2[sl][nucleus & (np.abs(u) < 0.6) & (np.abs(t) < 0.45)] *= 0.6


def _bone(cv: Canvas, sl, shape_outer: np.ndarray, shape_inner: np.ndarray) -> None:
    cv.paint(sl, shape_outer, CORTEX)
    cv.paint(sl, shape_inner, MARROW, t1=MARROW.t1 * 0.95, t2=MARROW.t2 * 0.95)


def paint_posterior(cv: Canvas, spine: Spine, vb: Vertebra) -> None:
    """Pedicles and articular pillars (lateral slices), laminae and spinous process (midline)."""
    lam0 = vb.depth / 2 + 1.5 + spine.canal_ap + 2.0
    x0 = float(spine.midline_x(vb.centre[0]))
    found = frame_box(cv, vb.centre, vb.phi, (-0.6 * vb.height, 0.6 * vb.height + vb.disc_below + 14),
                      (vb.depth / 2 - 4, lam0 + 33), (x0 - 22, x0 + 22))
    if found is None:
        return
    sl, X, Y, Z = found
    X = np.abs(X - np.float32(x0))
    u, v = local_coords(Y, Z, vb.centre, vb.phi)
    H = vb.height
    parts = (  # (u centre, v centre, |x| centre, half sizes u, v, x)
        (-0.2 * H, (vb.depth / 2 + lam0) / 2, 11.5, 0.3 * H, (lam0 - vb.depth / 2) / 2 + 2, 5.0),
        (0.1 * H, lam0 + 4, 16.5, 0.5 * H + 3, 7.0, 5.0),
        (0.05 * H, lam0 + 3, 0.0, 0.45 * H, 3.5, 13.0),
    )
    for uc, vc, xc, hu, hv, hx in parts:
        du, dv, dx = (u - uc) / hu, (v - vc) / hv, (X - xc) / hx
        outer = du ** 4 + dv ** 4 + dx ** 4 <= 1
        inner = (du * hu / (hu - 1)) ** 4 + (dv * hv / (hv - 1)) ** 4 + dx ** 4 <= 0.9
        _bone(cv, sl, outer, inner)
    # Spinous process: slopes down and back from the lamina.
    us = -0.05 * H + 0.35 * (v - lam0)
    du, dv, dx = (u - us) / 7.5, (v - (lam0 + 17)) / 14.0, X / 3.5
    _bone(cv, sl, du ** 6 + dv ** 4 + dx ** 2 <= 1, (du * 1.12) ** 6 + (dv * 1.06) ** 4 + dx ** 2 <= 0.9)
    # Facet joint between this vertebra's inferior and the next one's superior process.
    joint = np.abs(u - (0.5 * H + 0.3 * vb.disc_below - 0.3 * (v - lam0))) < 0.7
    cv.paint(sl, joint & (np.abs(X - 16.5) < 4.5) & (np.abs(v - lam0 - 4) < 6), FACET)
