"""Markdown tables shaped like the study's Tables 2 (internal) and 3 (external)."""

from __future__ import annotations

import math

import pandas as pd

from vcpred import RESEARCH_NOTICE


def mean_sd(mean: float, sd: float) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.4f}" if sd is None or math.isnan(sd) else f"{mean:.4f} ({sd:.4f})"


def p_text(p: float, level: float) -> str:
    """'0.011*', '< 0.001*', '0.172'; star when p < the Bonferroni level."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    text = "< 0.001" if p < 0.001 else f"{p:.3f}"
    return text + ("*" if p < level else "")


def _model(row: pd.Series) -> str:
    return f"**{row['variant']}** (best)" if row["best"] == "true" else str(row["variant"])


def _section(summary: pd.DataFrame, set_name: str, level: float) -> list[str]:
    rows = summary[summary["set"] == set_name]
    header = ["Model", "Clinical", "AUC", "Specificity", "Sensitivity", "p-value"]
    if set_name == "external":
        header += ["split models: median p (significant)", "ensemble AUC (95 % CI)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in rows.iterrows():
        best = row["best"] == "true"
        cells = [_model(row), row["clinical"], mean_sd(row["auc_mean"], row["auc_sd"]),
                 mean_sd(row["specificity_mean"], row["specificity_sd"]),
                 mean_sd(row["sensitivity_mean"], row["sensitivity_sd"]),
                 "-" if best else p_text(row["p_value"], level)]
        if set_name == "external":
            cells.append("-" if best else f"{p_text(row.get('p_split_delong_median', math.nan), level)} "
                                          f"({int(row.get('n_splits_significant', 0) or 0)}/{row['n_splits']})")
            cells.append(_ensemble_cell(row))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def _ensemble_cell(row: pd.Series) -> str:
    auc = row.get("ensemble_auc", math.nan)
    if auc is None or math.isnan(auc):
        return "n/a"
    return f"{auc:.4f} ({row['ensemble_auc_ci_low']:.4f}-{row['ensemble_auc_ci_high']:.4f})"


def tables_markdown(ev, summary: pd.DataFrame) -> str:
    """The two tables with footnotes on tests and the Bonferroni level."""
    comp = ev.comparisons
    m, level = comp["n_comparisons"], comp["bonferroni_level"]
    n_splits = int(summary["n_splits"].max()) if len(summary) else 0
    lines = [f"# Evaluation of {ev.runs_dir}", "", f"_{RESEARCH_NOTICE}_", "",
             f"Mean (SD) over up to {n_splits} splits. AP = augmented prediction ({ev.aggregate} over "
             f"frames). Best configuration: **{comp['best']}** ({comp.get('best_rule', '')}). "
             f"\\* significant after Bonferroni correction: p < {comp['alpha']}/{m} = {level:.4f}.", "",
             "## Internal validation (shaped like Table 2)", "",
             "Threshold: Youden's J on each split's validation predictions (so internal sensitivity and "
             "specificity are optimistic). p-value: paired t-test of the per-split AUCs vs the best.", ""]
    lines += _section(summary, "internal", level)
    lines += ["", "## External validation (shaped like Table 3)", "",
              "Each split model scored on the external set at its own validation threshold. p-value: "
              "paired DeLong test of the split ensemble (mean of the split models' probabilities) vs the "
              "best one; split models: median p of the per-split paired DeLong tests and how many splits "
              "are significant. Holm-adjusted p-values are in summary.csv.", ""]
    lines += _section(summary, "external", level)
    if ev.skipped:
        lines += ["", f"Skipped {len(ev.skipped)} unfinished run(s): " +
                  "; ".join(f"{p} ({r})" for p, r in ev.skipped)]
    return "\n".join(lines) + "\n"
