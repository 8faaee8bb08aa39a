"""The true risk of vertebral collapse: a documented logistic model of lesion and clinical factors.

    eta = b0
          + 2.4 cleft                       (intravertebral fluid cleft, 0/1)
          + 3.6 (edema - 0.55)              (edema extent, fraction of body height)
          + 14.0 (compression - 0.22)       (height loss of the most collapsed column)
          + 1.4 posterior_wall              (posterior-wall involvement, 0/1)
          + 0.6 tl_junction                 (fracture at T12 or L1)
          + 0.3 (age - 74) / 8
          + 0.4 (-(bmd_tscore + 2.8) / 0.8)
          + 0.5 steroid
    collapse ~ Bernoulli(sigmoid(eta + u)),  u ~ Normal(0, 0.6) unobserved (patient factors no
    image or chart shows)

with b0 = -2.4. `true_logit` = eta and `true_probability` = E_u[sigmoid(eta + u)] (20-node
Gauss-Hermite quadrature): the best possible prediction from everything the images and clinical
columns show, so its AUC against the labels is the Bayes AUC a model can at most reach.
The lesion terms carry most of the variance of eta; the clinical terms add a moderate part, partly
redundant because low T-score and steroids also make larger edema, clefts and collapse (lesion.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcpred.synth.clinical import Clinical
from vcpred.synth.lesion import Lesion

INTERCEPT = -2.4
COEF = {"cleft": 2.4, "edema": 3.6, "compression": 14.0, "posterior_wall": 1.4, "tl_junction": 0.6,
        "age": 0.3, "fragility": 0.4, "steroid": 0.5}
CENTRES = {"edema": 0.55, "compression": 0.22}
UNOBSERVED_SD = 0.6
TL_JUNCTION = ("T12", "L1")

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(20)


@dataclass(frozen=True)
class Risk:
    logit: float            # eta: the linear predictor of everything observable
    image_part: float       # the lesion terms of eta
    clinical_part: float    # the clinical terms of eta
    probability: float      # E_u[sigmoid(eta + u)]
    label: int              # the drawn outcome, 0/1


def terms(clinical: Clinical, lesion: Lesion) -> tuple[float, float]:
    """(image_part, clinical_part) of the linear predictor, without the intercept."""
    image = (COEF["cleft"] * lesion.cleft
             + COEF["edema"] * (lesion.edema - CENTRES["edema"])
             + COEF["compression"] * (lesion.compression - CENTRES["compression"])
             + COEF["posterior_wall"] * lesion.posterior_wall
             + COEF["tl_junction"] * (lesion.level in TL_JUNCTION))
    bone = -(clinical.bmd_tscore + 2.8) / 0.8
    clin = (COEF["age"] * (clinical.age - 74.0) / 8.0 + COEF["fragility"] * bone
            + COEF["steroid"] * clinical.steroid)
    return float(image), float(clin)


def marginal_probability(logit: float | np.ndarray, sd: float = UNOBSERVED_SD) -> np.ndarray:
    """E_u[sigmoid(logit + u)] for u ~ Normal(0, sd), by Gauss-Hermite quadrature."""
    logit = np.asarray(logit, dtype=float)[..., None]
    values = 1.0 / (1.0 + np.exp(-(logit + sd * _NODES)))
    return (values * _WEIGHTS).sum(-1) / _WEIGHTS.sum()


def draw_risk(rng: np.random.Generator, clinical: Clinical, lesion: Lesion) -> Risk:
    """The true logit and probability of one patient and its drawn 0/1 outcome."""
    image, clin = terms(clinical, lesion)
    eta = INTERCEPT + image + clin
    u = rng.normal(0.0, UNOBSERVED_SD)
    label = int(rng.random() < 1.0 / (1.0 + np.exp(-(eta + u))))
    return Risk(eta, image, clin, float(marginal_probability(eta)), label)
