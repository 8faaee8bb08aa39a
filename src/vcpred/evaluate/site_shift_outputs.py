"""Writing the site-shift check: site_shift.json, site_shift.md, separability.csv, acquisition.csv, patients.csv."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from vcpred import __version__
from vcpred.evaluate.site_shift import EASY_AUC, MEASURES, NOTICEABLE_AUC, Separation, SiteShift
from vcpred.jsonio import json_text, jsonable

GENERATOR = "vcpred cohort shift"
FILES = ("site_shift.json", "site_shift.md", "separability.csv", "acquisition.csv", "patients.csv")


def number(value: float | None, digits: int = 3) -> str:
    """digits significant figures; whole numbers from 100 on (scanner units: 1570, not 1.57e+03)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.{digits}g}"


def median_iqr(row: pd.Series) -> str:
    if row["n"] == 0:
        return "n/a"
    return f"{number(row['median'])} [{number(row['q1'])}-{number(row['q3'])}]"


def scanners(shift: SiteShift) -> dict[str, dict[str, int]]:
    """site -> scanner ('manufacturer model' from the store's provenance) -> patients."""
    known = shift.patients[shift.patients["scanner"] != ""]
    return {str(site): {str(k): int(v) for k, v in rows["scanner"].value_counts().sort_index().items()}
            for site, rows in known.groupby("site")}


def to_json(shift: SiteShift) -> dict:
    nested: dict = {}
    for row in shift.summaries.itertuples(index=False):
        nested.setdefault(row.kind, {}).setdefault(row.group, {})[row.measure] = {
            "median": row.median, "q1": row.q1, "q3": row.q3, "n": row.n}
    headline = shift.headline
    return jsonable({
        "generator": GENERATOR, "vcpred_version": __version__, "manifest": shift.manifest, "store": shift.store,
        "classifier": {"model": "logistic regression on standardised features (scikit-learn defaults)",
                       "cross_validation": "stratified K-fold over patients, shuffled", **asdict(shift.classifier),
                       "chance": "the same AUC with the group labels shuffled: mean and SD over the permutations",
                       "features": shift.features, "left_out": shift.left_out},
        "thresholds": {"easy": EASY_AUC, "noticeable": NOTICEABLE_AUC},
        "headline": headline.verdict if headline else None,
        "separations": [asdict(s) for s in shift.separations],
        "measures": MEASURES, "summaries": nested, "scanners": scanners(shift)})


def separability_rows(found: list[Separation]) -> list[list[str]]:
    """comparison, patients, rest, folds, AUC, chance band, reading: for the markdown and the report."""
    return [[s.name, str(s.n_group), str(s.n_rest), str(s.folds or "-"), "-" if s.auc is None else f"{s.auc:.2f}",
             chance_band(s), s.level] for s in found]


def chance_band(found: Separation) -> str:
    if found.chance_mean is None or found.chance_sd is None:
        return "-"
    return f"{found.chance_mean:.2f} ± {2 * found.chance_sd:.2f}"


SEPARABILITY_HEADER = ["comparison", "patients", "rest", "folds", "cross-validated AUC",
                       "shuffled labels (mean ± 2 SD)", "reading"]


def acquisition_rows(shift: SiteShift) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per measure, one column per site and set, median [IQR]."""
    table = shift.summaries
    columns = list(dict.fromkeys(zip(table["kind"], table["group"])))
    rows = []
    for measure in MEASURES:
        mine = table[table["measure"] == measure].set_index(["kind", "group"])
        rows.append([measure, *(median_iqr(mine.loc[column]) for column in columns)])
    return ["measure", *(f"{kind} {group}" for kind, group in columns)], rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def to_markdown(shift: SiteShift) -> str:
    header, rows = acquisition_rows(shift)
    c = shift.classifier
    lines = ["# Site-shift check", "",
             f"Manifest {shift.manifest}, prepared store {shift.store}. Separability: logistic regression on "
             f"{len(shift.features)} statistics of the prepared main frame, {c.folds}-fold stratified "
             f"cross-validation over patients (seed {c.seed}); chance: the same AUC with the labels shuffled "
             f"({c.permutations} times). Readings: AUC >= {EASY_AUC} easy, >= {NOTICEABLE_AUC} noticeable, else (or "
             "within the shuffled labels' mean + 2 SD) hard to tell apart (docs/site_shift.md).", "",
             *(f"- {s.verdict}" for s in shift.separations), "",
             "## How well each group is told apart", "",
             *_markdown_table(SEPARABILITY_HEADER, separability_rows(shift.separations)), "",
             "## Acquisition per site and set: median [IQR]", "",
             *_markdown_table(header, rows), "",
             *(f"- {name}: {words}" for name, words in MEASURES.items())]
    if shift.left_out:
        lines += ["", f"Features left out (not finite for every patient): {', '.join(shift.left_out)}."]
    return "\n".join(lines) + "\n"


def write_site_shift(shift: SiteShift, folder: Path) -> list[Path]:
    """Every FILES entry into folder (a fresh folder from vcpred.output_folder.replacing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site_shift.json").write_text(json_text(to_json(shift)))
    (folder / "site_shift.md").write_text(to_markdown(shift))
    pd.DataFrame([asdict(s) for s in shift.separations]).to_csv(folder / "separability.csv", index=False)
    shift.summaries.to_csv(folder / "acquisition.csv", index=False)
    shift.patients.to_csv(folder / "patients.csv", index=False)
    return [folder / name for name in FILES]
