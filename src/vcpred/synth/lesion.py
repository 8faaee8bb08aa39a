"""The acute fracture and its imaging findings (latent lesion factors), drawn given the clinicals.

Fragility f = -(T-score + 2.8) / 0.8 + 0.8 steroid (SD units; higher = weaker bone) drives the
findings, so the clinical variables are partly redundant with the images:
- morphology: wedge 55 %, biconcave 25 %, crush 20 %
- compression (height loss of the most collapsed column) c = clip(0.22 + 0.05 f + N(0, 0.09), 0.08, 0.6)
- edema extent e (fraction of the body height, from the fractured endplate)
  = 0.15 + 0.85 sigmoid(0.4 f - 0.6 log(days / 10) + N(0, 1)); edema fades with time
- cleft (fluid band) with P = sigmoid(-1.5 + 0.5 f + 0.5 log(days / 10) + 0.8 steroid + 2 (c - 0.22))
  its lateral centre ~ N(0, 5) mm from the midline (clipped to +-11), half-width U(2.5, 8) mm and
  thickness U(2, 4.5) mm, so it is often off the central slice
- posterior-wall involvement with P = sigmoid(-2.2 + 6 (c - 0.22) + 0.6 crush), retropulsion
  U(1.5, 4.5) mm
- 0..2 old healed deformities (mild wedge, 8-20 % anterior height loss, no edema) at other levels
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcpred.synth.clinical import LEVELS, Clinical

MORPHOLOGIES = ("wedge", "biconcave", "crush")


def sigmoid(x: float | np.ndarray) -> float | np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Lesion:
    """Latent lesion factors of the acute fracture (lengths in mm, fractions of body height)."""

    level: str
    morphology: str
    compression: float          # height loss of the most collapsed column, 0..1
    heights: tuple[float, float, float]  # anterior, middle, posterior height / normal height
    edema: float                # edema extent, fraction of body height, 0..1
    edema_x_mm: float           # lateral centre of the edema (+ = patient left)
    cleft: int                  # 0/1 intravertebral fluid cleft
    cleft_x_mm: float           # lateral centre of the cleft
    cleft_halfwidth_mm: float   # lateral half-width of the cleft
    cleft_depth: float          # cleft centre below the superior endplate, fraction of height
    cleft_thickness_mm: float
    posterior_wall: int         # 0/1 posterior-wall involvement
    retropulsion_mm: float      # posterior bulge of the wall into the canal
    old_fractures: tuple[tuple[str, float], ...]  # (level, anterior height ratio) distractors

    @property
    def ap_ratio(self) -> float:
        """Anterior / posterior height ratio."""
        return self.heights[0] / self.heights[2]


def fragility(clinical: Clinical) -> float:
    """Bone fragility in SD units: lower T-score and steroid use make weaker bone."""
    return -(clinical.bmd_tscore + 2.8) / 0.8 + 0.8 * clinical.steroid


def _heights(morphology: str, c: float) -> tuple[float, float, float]:
    """Anterior, middle, posterior heights as fractions of the normal height."""
    if morphology == "wedge":
        return (1 - c, 1 - 0.55 * c, 1 - 0.1 * c)
    if morphology == "biconcave":
        return (1 - 0.3 * c, 1 - c, 1 - 0.15 * c)
    return (1 - c, 1 - 0.95 * c, 1 - 0.75 * c)


def _old_fractures(rng: np.random.Generator, level: str) -> tuple[tuple[str, float], ...]:
    others = [lv for lv in LEVELS[:-1] if lv != level]
    count = int(rng.choice(3, p=(0.55, 0.3, 0.15)))
    picks = rng.choice(len(others), size=count, replace=False)
    return tuple((others[i], round(float(1 - rng.uniform(0.08, 0.2)), 3)) for i in sorted(picks))


def draw_lesion(rng: np.random.Generator, clinical: Clinical) -> Lesion:
    """The acute fracture of one patient (see the module docstring for the model)."""
    f = fragility(clinical)
    log_days = float(np.log(clinical.days_to_mri / 10.0))
    morphology = MORPHOLOGIES[rng.choice(3, p=(0.55, 0.25, 0.20))]
    c = float(np.clip(0.22 + 0.05 * f + rng.normal(0, 0.09), 0.08, 0.6))
    edema = 0.15 + 0.85 * float(sigmoid(0.4 * f - 0.6 * log_days + rng.normal(0, 1.0)))
    p_cleft = sigmoid(-1.5 + 0.5 * f + 0.5 * log_days + 0.8 * clinical.steroid + 2 * (c - 0.22))
    cleft = int(rng.random() < p_cleft)
    p_wall = sigmoid(-2.2 + 6 * (c - 0.22) + 0.6 * (morphology == "crush"))
    wall = int(rng.random() < p_wall)
    return Lesion(
        level=clinical.level, morphology=morphology, compression=c, heights=_heights(morphology, c),
        edema=edema, edema_x_mm=float(rng.normal(0, 3.0)),
        cleft=cleft, cleft_x_mm=float(np.clip(rng.normal(0, 5.0), -11.0, 11.0)),
        cleft_halfwidth_mm=float(rng.uniform(2.5, 8.0)), cleft_depth=float(rng.uniform(0.2, 0.45)),
        cleft_thickness_mm=float(rng.uniform(2.0, 4.5)),
        posterior_wall=wall, retropulsion_mm=float(rng.uniform(1.5, 4.5)) if wall else 0.0,
        old_fractures=_old_fractures(rng, clinical.level),
    )
