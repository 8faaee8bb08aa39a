"""Geometry of one synthetic thoracolumbar spine (T10..S1) in the sagittal image plane.

Image-plane coordinates, in mm: y runs down the rows (superior -> inferior), z along the columns
(anterior -> posterior), x across slices (patient right -> left). Each vertebra has a centre
(y, z) and a tilt phi: its superior direction is (-cos phi, -sin phi), so phi > 0 leans the
upper end anteriorly (lordosis) and phi < 0 posteriorly (kyphosis). Local body coordinates:
u along the axis (+ inferior), v across it (+ posterior), t = v / (depth / 2) in [-1, 1].

The spine is stacked from S1 upwards. A deformed body (the acute fracture or an old healed
wedge) loses height from its superior endplate (both endplates when biconcave), and everything
above it sits on the deformed surface: it drops by the lost height and tilts forward by the
wedge angle, giving the local kyphosis of a real wedge fracture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

from vcpred.synth.clinical import LEVELS, Clinical
from vcpred.synth.lesion import Lesion

# Normal dimensions in mm: body height, AP depth, lateral half-width, disc height below.
DIMENSIONS = {
    "T10": (21.0, 28.0, 17.0, 5.5), "T11": (22.0, 29.0, 18.0, 6.0), "T12": (23.0, 30.0, 19.0, 7.0),
    "L1": (25.0, 32.0, 20.0, 8.0), "L2": (26.0, 34.0, 21.0, 9.0), "L3": (27.0, 35.0, 22.0, 10.0),
    "L4": (27.0, 36.0, 23.0, 10.5), "L5": (26.0, 36.0, 24.0, 10.0), "S1": (24.0, 34.0, 24.0, 0.0),
}
# Tilt of each level in degrees for an average lordosis (S1 steep, thoracic slightly kyphotic).
TILT_DEG = {"S1": 34.0, "L5": 20.0, "L4": 10.0, "L3": 3.0, "L2": -1.0, "L1": -3.0, "T12": -4.0,
            "T11": -5.0, "T10": -6.0}
KYPHOSIS_GAIN = 0.6   # share of a wedge angle passed on as local kyphosis (discs absorb the rest)


@dataclass
class Vertebra:
    level: str
    height: float                     # normal body height, mm
    depth: float                      # AP depth, mm
    halfwidth: float                  # lateral half-width, mm
    disc_below: float                 # height of the disc below, mm
    heights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # anterior/middle/posterior fractions
    biconcave: bool = False
    acute: bool = False
    centre: tuple[float, float] = (0.0, 0.0)  # (y, z) mm
    phi: float = 0.0                  # tilt, radians
    marrow: float = 1.0               # per-level marrow brightness factor

    def loss(self, t: np.ndarray | float) -> np.ndarray:
        """Height lost at AP position t (-1 anterior .. +1 posterior), mm."""
        a, m, p = self.heights
        t = np.asarray(t, dtype=np.float32)
        profile = m + 0.5 * (p - a) * t + (0.5 * (a + p) - m) * t * t
        return (1.0 - profile) * self.height

    def superior_loss(self, t: np.ndarray | float) -> np.ndarray:
        return self.loss(t) * (0.5 if self.biconcave else 1.0)

    def inferior_loss(self, t: np.ndarray | float) -> np.ndarray:
        return self.loss(t) * (0.5 if self.biconcave else 0.0)


@dataclass
class Disc:
    centre: tuple[float, float]
    phi: float
    height: float
    depth: float
    halfwidth: float
    hydration: float                  # 0 (dark, degenerated) .. 1 (bright nucleus on T2)
    fill: float                       # extra half-height to fill endplate depressions, mm


@dataclass
class Spine:
    vertebrae: list[Vertebra]         # T10 .. S1, top to bottom
    discs: list[Disc]                 # between consecutive vertebrae, top to bottom
    x0: float                         # lateral position of the midline at the fracture, mm
    x_slope: float                    # lateral drift of the midline per mm of y (mild scoliosis)
    canal_ap: float                   # thecal sac AP diameter, mm
    conus_y: float                    # y of the conus medullaris tip, mm
    fat_mm: float                     # subcutaneous fat thickness, mm
    muscle_mm: float                  # paraspinal muscle thickness behind the laminae, mm
    fracture: Vertebra = field(init=False)

    def __post_init__(self) -> None:
        self.fracture = next(v for v in self.vertebrae if v.acute)

    def midline_x(self, y: np.ndarray | float) -> np.ndarray:
        """Lateral position (mm, + left) of the spine's midline at height y."""
        return self.x0 + self.x_slope * (np.asarray(y) - self.fracture.centre[0])

    def centreline(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z, phi, half-depth) of the spinal axis at each y: a smooth curve through the body
        centres (monotone cubic), continued along the end tilts beyond the first and last body."""
        ys = np.array([v.centre[0] for v in self.vertebrae])
        zs = np.array([v.centre[1] for v in self.vertebrae])
        halves = np.array([v.depth / 2 for v in self.vertebrae])
        curve = PchipInterpolator(ys, zs, extrapolate=False)
        inside = np.clip(y, ys[0], ys[-1])
        slope = curve(inside, 1)
        z = curve(inside) + (y - inside) * slope
        return z, np.arctan(slope), np.interp(y, ys, halves)


def _up(phi: float) -> np.ndarray:
    """Unit vector (dy, dz) pointing superiorly along an axis of tilt phi."""
    return np.array([-np.cos(phi), -np.sin(phi)])


def _make_vertebrae(rng: np.random.Generator, clinical: Clinical, lesion: Lesion) -> list[Vertebra]:
    scale = rng.normal(1.0, 0.05) * (0.95 if clinical.sex == "F" else 1.03)
    old = dict(lesion.old_fractures)
    vertebrae = []
    for level in LEVELS:
        h, d, w, disc = DIMENSIONS[level]
        v = Vertebra(level, h * scale, d * scale, w * scale, disc * scale * rng.uniform(0.85, 1.1),
                     marrow=float(rng.uniform(0.9, 1.1)))
        if level == lesion.level:
            v.heights, v.acute = lesion.heights, True
            v.biconcave = lesion.morphology == "biconcave"
        elif level in old:
            v.heights = (old[level], 1 - 0.5 * (1 - old[level]), 1.0)
        vertebrae.append(v)
    return vertebrae


def _stack(vertebrae: list[Vertebra], lordosis: float, tilt: float) -> list[tuple]:
    """Place bodies from S1 upwards; returns disc placements (centre, phi) bottom-up."""
    phis = {lv: np.deg2rad(TILT_DEG[lv] * lordosis + tilt) for lv in LEVELS}
    kyphosis = 0.0
    below = vertebrae[-1]
    below.centre, below.phi = (0.0, 0.0), phis[below.level]
    placed = []
    for above in reversed(vertebrae[:-1]):
        rim = 0.5 * float(below.superior_loss(-1.0) + below.superior_loss(1.0))
        drop = float(below.superior_loss(-1.0) - below.superior_loss(1.0))  # anterior minus posterior
        wedge = KYPHOSIS_GAIN * np.arctan(drop / below.depth)
        kyphosis += wedge
        top = np.array(below.centre) + _up(below.phi) * (below.height / 2 - rim)
        above.phi = phis[above.level] - kyphosis
        disc_phi = 0.5 * (below.phi - wedge + above.phi)
        disc_centre = top + _up(disc_phi) * above.disc_below / 2
        rim_above = 0.5 * float(above.inferior_loss(-1.0) + above.inferior_loss(1.0))
        centre = top + _up(disc_phi) * above.disc_below + _up(above.phi) * (above.height / 2 - rim_above)
        above.centre = (float(centre[0]), float(centre[1]))
        placed.append((disc_centre, disc_phi, above, below))
        below = above
    return placed


def _discs(placed: list[tuple], rng: np.random.Generator, age: float) -> list[Disc]:
    discs = []
    for centre, phi, above, below in reversed(placed):
        depression = max(float(np.max(below.superior_loss(np.linspace(-1, 1, 9)))),
                         float(np.max(above.inferior_loss(np.linspace(-1, 1, 9)))))
        lower = LEVELS.index(below.level) / len(LEVELS)
        hydration = float(np.clip(rng.normal(0.95 - 0.012 * (age - 60) - 0.3 * lower, 0.15), 0.15, 1))
        discs.append(Disc((float(centre[0]), float(centre[1])), float(phi), above.disc_below,
                          min(above.depth, below.depth) * 0.97, min(above.halfwidth, below.halfwidth),
                          hydration, depression + 1.0))
    return discs


def build_spine(rng: np.random.Generator, clinical: Clinical, lesion: Lesion,
                target: tuple[float, float]) -> Spine:
    """Lay out the spine so that the L1 body centre lands at `target` (y, z) in mm."""
    vertebrae = _make_vertebrae(rng, clinical, lesion)
    placed = _stack(vertebrae, lordosis=float(rng.normal(1.0, 0.15)), tilt=float(rng.normal(0, 2.0)))
    l1 = next(v for v in vertebrae if v.level == "L1").centre
    shift = np.array(target) - np.array(l1)
    for v in vertebrae:
        v.centre = (v.centre[0] + float(shift[0]), v.centre[1] + float(shift[1]))
    placed = [(c + shift, phi, a, b) for c, phi, a, b in placed]
    conus = "L1" if rng.random() < 0.7 else "L2"
    conus_level = next(v for v in vertebrae if v.level == conus)
    fat = float(np.clip(6.0 + 2.2 * (clinical.bmi - 17.0) + rng.normal(0, 4), 4.0, 45.0))
    return Spine(vertebrae, _discs(placed, rng, clinical.age), x0=float(rng.normal(0, 2.5)),
                 x_slope=float(rng.normal(0, 0.015)), canal_ap=float(rng.uniform(12.0, 16.0)),
                 conus_y=conus_level.centre[0] + float(rng.uniform(-5, 12)),
                 fat_mm=fat, muscle_mm=float(rng.uniform(35.0, 50.0)))
