"""Subgroup metrics of the split ensembles on the external set (evaluation.json `subgroups`): per
variant, per manifest column (sex, age band, site), per value, the discrimination at the ensemble's
threshold. Needs `vcpred evaluate --manifest`."""

from __future__ import annotations

import math

import pandas as pd

from vcpred import console
from vcpred.evaluate.per_split import discrimination

AGE_BANDS = ((-math.inf, 60, "<60"), (60, 70, "60-69"), (70, 80, "70-79"), (80, math.inf, "80+"))


def subgroup_columns(manifest_path: str) -> pd.DataFrame:
    """Per patient_id: sex, age_band, site where the manifest has them (columns missing are left out)."""
    from vcpred.cohort import load_manifest  # the cohort package is only needed with --manifest

    cohort = load_manifest(manifest_path, check_files=False)
    rows = {}
    for record in cohort.records:
        clinical = {k.lower(): v for k, v in record.clinical.items()}
        sex = clinical.get("sex", clinical.get("gender"))
        rows[record.patient_id] = {"sex": sex, "age_band": age_band(clinical.get("age")), "site": record.site}
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.loc[:, table.notna().any()]


def age_band(age) -> str | None:
    """The AGE_BANDS label of an age (None when it is missing or not a number)."""
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
