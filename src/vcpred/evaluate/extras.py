"""Calibration curves, decision curves and subgroup metrics of the split ensembles (external set)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vcpred import console
from vcpred.evaluate.ensemble import Ensemble
from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.per_split import discrimination
from vcpred.stats import calibration, net_benefit
from vcpred.stats.decision import net_benefit_treat_all

AGE_BANDS = ((-math.inf, 60, "<60"), (60, 70, "60-69"), (70, 80, "70-79"), (80, math.inf, "80+"))


def parse_thresholds(text: str) -> np.ndarray:
    """'START:STOP:STEP' (STOP included) -> threshold probabilities in (0, 1); shape (k,)."""
    try:
        start, stop, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise EvaluationError(f"--thresholds {text!r} must be START:STOP:STEP, e.g. 0.05:0.95:0.01") from None
    if not (0 < start <= stop < 1 and step > 0):
        raise EvaluationError(f"--thresholds {text!r}: need 0 < START <= STOP < 1 and STEP > 0")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    return np.round(start + step * np.arange(count), 10)


def _two_per_class(ensemble: Ensemble) -> bool:
    y = ensemble.labelled["label"]
    return min((y == 1).sum(), (y == 0).sum()) >= 2


def calibration_curves(ensembles: dict, n_bins: int = 10) -> dict[str, dict]:
    """Per variant label: slope, intercept, Brier and binned curve of the ensemble's external probabilities."""
    out = {}
    for variant, ens in ensembles.items():
        if not _two_per_class(ens):
            continue
        r = calibration(ens.labelled["label"].to_numpy(int), ens.labelled["probability"].to_numpy(), n_bins=n_bins)
        out[variant.label] = {
            "slope": r.slope, "intercept": r.intercept, "brier": r.brier, "converged": r.converged,
            "n": r.n, "curve": {"bin_low": r.curve.bin_low.tolist(), "bin_high": r.curve.bin_high.tolist(),
                                "mean_predicted": r.curve.mean_predicted.tolist(),
                                "observed_fraction": r.curve.observed_fraction.tolist(),
                                "count": r.curve.count.tolist()}}
    return out


def decision_curves(ensembles: dict, thresholds: np.ndarray) -> dict:
    """Net benefit per variant's ensemble, with treat-all and treat-none, over thresholds."""
    usable = {v: e for v, e in ensembles.items() if _two_per_class(e)}
    if not usable:
        return {}
    first = next(iter(usable.values())).labelled["label"].to_numpy(int)
    curves = {v.label: net_benefit(e.labelled["label"].to_numpy(int), e.labelled["probability"].to_numpy(),
                                   thresholds).tolist() for v, e in usable.items()}
    return {"thresholds": thresholds.tolist(), "treat_all": net_benefit_treat_all(first, thresholds).tolist(),
            "treat_none": [0.0] * len(thresholds), "net_benefit": curves}


def subgroup_columns(manifest_path: str) -> pd.DataFrame:
    """Per patient_id: sex, age_band, site where the manifest has them (columns missing are left out)."""
    from vcpred.cohort import load_manifest  # the cohort package is only needed with --manifest

    cohort = load_manifest(manifest_path, check_files=False)
    rows = {}
    for record in cohort.records:
        clinical = {k.lower(): v for k, v in record.clinical.items()}
        sex = clinical.get("sex", clinical.get("gender"))
        rows[record.patient_id] = {"sex": sex, "age_band": _age_band(clinical.get("age")), "site": record.site}
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.loc[:, table.notna().any()]


def _age_band(age) -> str | None:
    if not isinstance(age, (int, float)) or math.isnan(age):
        return None
    return next(label for low, high, label in AGE_BANDS if low <= age < high)


def subgroups(ensembles: dict, groups: pd.DataFrame) -> dict:
    """Per variant, per subgroup column, per value: n, cases, AUC (CI), sens/spec at the ensemble threshold."""
    out: dict = {}
    missing = {p for e in ensembles.values() for p in e.labelled.index} - set(groups.index)
    if missing:
        console.warn(f"{len(missing)} external patient(s) are not in the manifest and are left out of the "
                     f"subgroups (e.g. {sorted(missing)[0]!r})")
    for variant, ens in ensembles.items():
        joined = ens.labelled.join(groups, how="left")
        per_column = {}
        for column in groups.columns:
            values = {}
            for value, part in joined.groupby(column, dropna=True):
                values[str(value)] = discrimination(part["label"].to_numpy(int), part["probability"].to_numpy(),
                                                    ens.threshold)
            per_column[column] = values
        out[variant.label] = per_column
    return out
