"""Validation AUC per development site, from out-of-split predictions (evaluation.json `sites`,
sites.csv).

A random split's mean AUC mixes the sites; a model that fails at one scanner can still rank well on
average. Each development patient's out-of-split probability (out_of_split: the mean over the
splits that validated it, so no model scores a patient it trained on) is joined with its manifest
site, and the AUC is computed per site, pooled over every development patient, and as the worst
site among those with at least 2 cases and 2 controls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vcpred.jsonio import from_dict
from vcpred.stats import MIN_PER_CLASS, delong_ci

NAN = math.nan


@dataclass(frozen=True)
class SiteAUC:
    """Out-of-split discrimination of one variant on a group of development patients (AUC and its
    DeLong 95 % CI NaN when the group has fewer than 2 cases or 2 controls)."""

    n: int
    n_cases: int
    auc: float
    auc_ci_low: float
    auc_ci_high: float


@dataclass(frozen=True)
class VariantSites:
    """evaluation.json `sites[variant]`: pooled over every development patient validated at least
    once, per manifest site ({} without --manifest), and the worst eligible site (None when fewer than
    2 sites have 2 cases and 2 controls)."""

    pooled: SiteAUC
    sites: dict[str, SiteAUC] = field(default_factory=dict)
    worst_site: str | None = None
    worst_site_auc: float = NAN


def read_sites(data) -> dict[str, VariantSites]:
    """evaluation.json `sites` read back ({} when absent: an evaluation written before it existed);
    ValueError when it does not fit."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("sites: expected an object")
    return {str(label): from_dict(VariantSites, found, f"sites[{label!r}]") for label, found in data.items()}


def site_auc(labels: np.ndarray, probabilities: np.ndarray) -> SiteAUC:
    """n, cases and the AUC with its DeLong CI (NaN when a class has fewer than 2 patients)."""
    labels = np.asarray(labels, int)
    cases, controls = int((labels == 1).sum()), int((labels == 0).sum())
    auc = low = high = NAN
    if min(cases, controls) >= MIN_PER_CLASS:
        auc, low, high = delong_ci(labels, np.asarray(probabilities, float))
    return SiteAUC(len(labels), cases, auc, low, high)


def eligible_sites(labels: pd.Series, sites: pd.Series) -> list[str]:
    """The sites (sorted) whose patients hold at least 2 cases and 2 controls: an AUC there is defined."""
    known = pd.DataFrame({"label": labels, "site": sites}).dropna()
    counts = known.groupby("site")["label"].agg(cases="sum", n="size")
    counts["controls"] = counts["n"] - counts["cases"]
    ok = counts[(counts["cases"] >= MIN_PER_CLASS) & (counts["controls"] >= MIN_PER_CLASS)]
    return sorted(str(s) for s in ok.index)


def variant_sites(pooled: pd.DataFrame, eligible: list[str]) -> VariantSites:
    """pooled: out_of_split's table with a `site` column (NaN: not in the manifest, or no --manifest)."""
    overall = site_auc(pooled["label"].to_numpy(), pooled["probability"].to_numpy())
    per_site = {str(site): site_auc(part["label"].to_numpy(), part["probability"].to_numpy())
                for site, part in pooled.groupby("site", sort=True)}
    if len(eligible) < 2:
        return VariantSites(overall, per_site)
    worst = min(eligible, key=lambda s: (per_site[s].auc, s))
    return VariantSites(overall, per_site, worst, per_site[worst].auc)


def with_sites(pooled: pd.DataFrame, sites: pd.Series | None) -> pd.DataFrame:
    """out_of_split's table with each patient's site (NaN where unknown)."""
    column = sites.reindex(pooled.index) if sites is not None else pd.Series(NAN, index=pooled.index, dtype=object)
    return pooled.assign(site=column.to_numpy())


def sites_table(sites: dict[str, VariantSites]) -> pd.DataFrame:
    """sites.csv: per variant a row `pooled` (every development patient) and one per site; `worst` (true/false)
    marks the site the worst-site AUC comes from."""
    rows = []
    for variant, found in sites.items():
        groups = [("pooled", "", found.pooled)] + [("site", name, m) for name, m in found.sites.items()]
        for level, name, m in groups:
            rows.append({"variant": variant, "level": level, "site": name, "n": m.n, "n_cases": m.n_cases,
                         "n_controls": m.n - m.n_cases, "auc": m.auc, "auc_ci_low": m.auc_ci_low,
                         "auc_ci_high": m.auc_ci_high,
                         "worst": "true" if level == "site" and name == found.worst_site else "false"})
    columns = ["variant", "level", "site", "n", "n_cases", "n_controls", "auc", "auc_ci_low", "auc_ci_high", "worst"]
    return pd.DataFrame(rows, columns=columns)
