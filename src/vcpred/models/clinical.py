"""Clinical features: preprocessing fitted on training patients only, and the logistic baseline.

Numeric columns: median imputation + a missing indicator, then standardisation.
Categorical columns: one-hot over the categories seen in training (+ a missing indicator); a
category never seen in training encodes as all zeros. Everything is saved as JSON (no pickles).
A numeric value the clinical-value policy refuses (vcpred.cohort.clinical_policy: not a finite number,
impossible) is an error, never a feature: `cohort check` reports the same values with their rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vcpred.cohort import PatientRecord
from vcpred.cohort.clinical_policy import value_refusal
from vcpred.errors import ConfigError

SHOWN = 3  # refused values named in the error; the rest are counted


@dataclass
class ColumnEncoding:
    name: str
    kind: str  # "numeric" | "categorical"
    median: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    categories: list[str] | None = None

    def width(self) -> int:
        return 2 if self.kind == "numeric" else len(self.categories or []) + 1

    def encode(self, value) -> list[float]:
        if self.kind == "numeric":
            missing = value is None
            x = self.median if missing else float(value)
            return [(x - self.mean) / self.std, float(missing)]
        return [float(value == c) for c in self.categories or []] + [float(value is None)]


def refuse_impossible(records: list[PatientRecord], names: list[str]) -> None:
    """ConfigError (one line, naming rows and patients) when a numeric value is one the policy refuses;
    checked before any arithmetic, so 1e300 is never squared into an overflow warning."""
    refused = [f"row {r.row} (patient {r.patient_id!r}): {why}" for name in names for r in records
               if r.clinical.get(name) is not None and (why := value_refusal(name, r.clinical[name]))]
    if refused:
        more = f"; and {len(refused) - SHOWN} more" if len(refused) > SHOWN else ""
        raise ConfigError(f"{len(refused)} clinical value(s) refused: {'; '.join(refused[:SHOWN])}{more}; correct "
                          "them in the manifest (`vcpred cohort check MANIFEST` lists every problem)")


@dataclass
class ClinicalPreprocessor:
    columns: list[ColumnEncoding]

    @classmethod
    def fit(cls, records: list[PatientRecord], names: list[str], kinds: dict[str, str]) -> "ClinicalPreprocessor":
        """Learn imputation, scaling and categories from these (training) records only."""
        missing = [n for n in names if n not in kinds]
        if missing:
            raise ConfigError(f"clinical columns {missing} are not in the manifest; it has {sorted(kinds)}")
        refuse_impossible(records, [n for n in names if kinds[n] == "numeric"])
        encodings = []
        for name in names:
            values = [r.clinical.get(name) for r in records]
            present = [v for v in values if v is not None]
            if kinds[name] == "numeric":
                array = np.asarray(present, dtype=float) if present else np.zeros(1)
                std = float(array.std()) or 1.0
                encodings.append(ColumnEncoding(name, "numeric", float(np.median(array)), float(array.mean()), std))
            else:
                encodings.append(ColumnEncoding(name, "categorical", categories=sorted({str(v) for v in present})))
        return cls(encodings)

    @property
    def width(self) -> int:
        return sum(c.width() for c in self.columns)

    def transform(self, records: list[PatientRecord]) -> np.ndarray:
        """[N, width] float32 features for these records."""
        refuse_impossible(records, [c.name for c in self.columns if c.kind == "numeric"])
        rows = [[x for c in self.columns for x in c.encode(r.clinical.get(c.name))] for r in records]
        return np.asarray(rows, dtype=np.float32).reshape(len(records), self.width)

    def to_dict(self) -> dict:
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict) -> "ClinicalPreprocessor":
        return cls([ColumnEncoding(**c) for c in data["columns"]])


@dataclass
class ClinicalLogistic:
    """The clinical-only baseline: L2 logistic regression on the encoded clinical features."""

    coef: list[float]
    intercept: float

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, *, c: float = 1.0) -> "ClinicalLogistic":
        from sklearn.linear_model import LogisticRegression  # slow import, needed only here

        model = LogisticRegression(C=c, max_iter=1000)  # unweighted: the output is a probability
        model.fit(features, labels)
        return cls(model.coef_[0].tolist(), float(model.intercept_[0]))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        logit = features @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def to_dict(self) -> dict:
        return asdict(self)
