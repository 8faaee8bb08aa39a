"""Figures of the report as PNG bytes: ROC curves (split models as a band, the ensemble as a line)
per variant, calibration plot and decision curve. Drawing is evaluate.figures' (shared with
`vcpred evaluate`); the ROC curves come from the runs' predictions tables, the calibration and
decision curves from evaluation.json (typed by ReportInputs)."""

from __future__ import annotations

import math

import pandas as pd

from vcpred.evaluate.aggregate import aggregate
from vcpred.evaluate.calibration import VariantCalibration
from vcpred.evaluate.figures import draw_calibration, draw_decision, draw_roc_band, plt, png_bytes
from vcpred.evaluate.runs import read_runs
from vcpred.evaluate.variants import Variant
from vcpred.report.inputs import ReportInputs

COLUMNS = 3  # ROC panels per row


def _curve(table: pd.DataFrame) -> tuple | None:
    """(fpr, tpr) of labelled patients, or None with fewer than one of each class."""
    from sklearn.metrics import roc_curve

    known = table[table["label"].notna()]
    if known["label"].nunique() < 2:
        return None
    fpr, tpr, _ = roc_curve(known["label"].astype(int), known["probability"])
    return fpr, tpr


def split_curves(inputs: ReportInputs) -> dict[str, list[tuple]]:
    """variant label -> external ROC curve of each split model (AP-aggregated like the evaluation)."""
    rule = inputs.evaluation.get("aggregate", "mean")
    curves: dict[str, list[tuple]] = {}
    for run in read_runs(inputs.runs_dir).runs:
        for ap in (False, True):
            table = aggregate(run.predictions, ap=ap, rule=rule)
            curve = _curve(table[table["set"] == "external"])
            if curve is not None:
                curves.setdefault(Variant(run.configuration, ap).label, []).append(curve)
    return curves


def _three(value) -> str | None:
    return None if value is None or pd.isna(value) else f"{value:.3f}"


def _title(inputs: ReportInputs, variant: str) -> str:
    """'NAME\nsplit AUC m (sd); ensemble e', with n/a (and why) where a number is missing."""
    row = inputs.summary[(inputs.summary["variant"] == variant) & (inputs.summary["set"] == "external")].iloc[0]
    mean, sd = _three(row.get("auc_mean")), _three(row.get("auc_sd"))
    split = f"{mean} ({sd or 'SD n/a'})" if mean else "n/a"
    return f"{variant}\nsplit AUC {split}; ensemble {_three(row.get('ensemble_auc')) or 'n/a'}"


def roc_png(inputs: ReportInputs) -> bytes | None:
    """Small multiples: one panel per variant (every configuration, without and with AP)."""
    curves = split_curves(inputs)
    variants = [v for v in dict.fromkeys(inputs.summary["variant"]) if v in curves]
    if not variants:
        return None
    rows = math.ceil(len(variants) / COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(3.4 * COLUMNS, 3.5 * rows), squeeze=False)
    ensembles = inputs.ensembles
    for ax, variant in zip(axes.flat, variants):
        mine = ensembles[ensembles["variant"] == variant]
        draw_roc_band(ax, curves[variant], _curve(mine), _title(inputs, variant))
    for ax in list(axes.flat)[len(variants):]:
        ax.set_axis_off()
    return png_bytes(fig)


def shown_variants(inputs: ReportInputs, limit: int = 3) -> list[str]:
    """The chosen and the best variant, then the highest external ensemble AUCs: few enough to read."""
    available = set(inputs.calibration)
    ranked = (inputs.summary[inputs.summary["set"] == "external"]
              .sort_values("ensemble_auc", ascending=False)["variant"].tolist())
    ordered = [inputs.chosen, inputs.evaluation["best"], *ranked]
    return [v for v in dict.fromkeys(ordered) if v in available][:limit]


def calibrated(inputs: ReportInputs, variants: list[str]) -> dict[str, VariantCalibration]:
    """The calibration curves that can be drawn: the legend quotes the slope, so it must be a number."""
    return {k: v for k, v in inputs.calibration.items() if k in variants and v.has_slope}


def calibration_png(inputs: ReportInputs, variants: list[str]) -> bytes | None:
    calibration = calibrated(inputs, variants)
    if not calibration:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_calibration(ax, calibration)
    return png_bytes(fig)


def decision_png(inputs: ReportInputs, variants: list[str]) -> bytes | None:
    curves = inputs.decision_curves
    if curves is None:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    draw_decision(ax, curves, variants)
    return png_bytes(fig)
