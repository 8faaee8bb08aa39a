"""Clinical variables of one synthetic OVCF patient, with realistic marginals and correlations.

Distributions (all draws from the patient's own generator):
- age ~ Normal(74, 8) years, clipped to 55..95
- sex: 75 % female
- BMI ~ Normal(23, 3.5) kg/m^2 (+0.5 in men), clipped 15..40
- steroid use: 10 %; diabetes: 12 % + 2 % per BMI unit above 23 (clipped 5..50 %)
- BMD T-score = -2.8 - 0.03 (age - 74) - 0.15 (female) or + 0.45 (male)
  + 0.08 (BMI - 23) - 0.4 steroid + Normal(0, 0.65), clipped -5.5..0.5
- days from injury to MRI ~ LogNormal(log 10, 0.7), rounded, clipped 1..90
- fractured level: T10 3 %, T11 15 %, T12 30 %, L1 30 %, L2 15 %, L3 4 %, L4 2 %, L5 1 %
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
FRACTURE_LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")
FRACTURE_LEVEL_P = (0.03, 0.15, 0.30, 0.30, 0.15, 0.04, 0.02, 0.01)


@dataclass(frozen=True)
class Clinical:
    """Clinical columns of the manifest (units: years, kg/m^2, SD units, days)."""

    age: float
    sex: str            # "F" or "M"
    bmi: float
    bmd_tscore: float
    steroid: int        # 0/1
    diabetes: int       # 0/1
    days_to_mri: int
    level: str

    def as_row(self) -> dict[str, object]:
        return {"age": round(self.age, 1), "sex": self.sex, "bmi": round(self.bmi, 1),
                "bmd_tscore": round(self.bmd_tscore, 2), "steroid": self.steroid,
                "diabetes": self.diabetes, "days_to_mri": self.days_to_mri}


def draw_clinical(rng: np.random.Generator) -> Clinical:
    """One patient's clinical variables (see the module docstring for the distributions)."""
    age = float(np.clip(rng.normal(74.0, 8.0), 55.0, 95.0))
    female = bool(rng.random() < 0.75)
    bmi = float(np.clip(rng.normal(23.0 if female else 23.5, 3.5), 15.0, 40.0))
    steroid = int(rng.random() < 0.10)
    p_diabetes = float(np.clip(0.12 + 0.02 * (bmi - 23.0), 0.05, 0.5))
    diabetes = int(rng.random() < p_diabetes)
    # Bone density falls with age, in women, in thin patients and under steroids.
    tscore = (-2.8 - 0.03 * (age - 74.0) + (-0.15 if female else 0.45) + 0.08 * (bmi - 23.0)
              - 0.4 * steroid + rng.normal(0.0, 0.65))
    days = int(np.clip(round(float(rng.lognormal(np.log(10.0), 0.7))), 1, 90))
    level = FRACTURE_LEVELS[rng.choice(len(FRACTURE_LEVELS), p=FRACTURE_LEVEL_P)]
    return Clinical(age, "F" if female else "M", bmi, float(np.clip(tscore, -5.5, 0.5)),
                    steroid, diabetes, days, level)
