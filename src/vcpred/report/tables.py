"""Comparison tables shaped like the study's Table 2 (backbone x weights x method) and Table 3
(+/- AP, +/- clinical features), internal and external, read from summary.csv (never recomputed)."""

from __future__ import annotations

import math

import pandas as pd

from vcpred.evaluate.compare import best_summary_row
from vcpred.evaluate.per_split import external_reason
from vcpred.evaluate.small_sample import as_sentence
from vcpred.evaluate.tables import identical_note, mean_sd, p_text
from vcpred.bundle.method import clinical_step, validation_uses
from vcpred.html import Html, bullet_list, join, note, section, table, tag
from vcpred.report.inputs import ReportInputs
from vcpred.report.selection import development_sites_block, selection_block
from vcpred.report.setup import model_text

SET_COLUMNS = ["AUC", "specificity", "sensitivity", "p vs best"]


def _four(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.4f}"


def ensemble_ci(row: pd.Series, ensemble: dict | None = None) -> str:
    """'0.8254 (0.7001-0.9507)': the split ensemble's AUC with its DeLong 95 % CI ('n/a' and why where
    missing; ensemble: its evaluation.json entry, with the counts that say why)."""
    auc = row.get("ensemble_auc", math.nan)
    if auc is None or pd.isna(auc):
        return f"n/a ({external_reason(ensemble)})"
    return f"{auc:.4f} ({_four(row.get('ensemble_auc_ci_low'))}-{_four(row.get('ensemble_auc_ci_high'))})"


def _small(row: pd.Series) -> bool:
    """Whether summary.csv flags the row's set as a small sample (evaluate's small_sample rule)."""
    return str(row.get("small_sample", "")).lower() == "true"


def _set_cells(row: pd.Series, alpha: float) -> list[str]:
    p_value = p_text(row["p_value"], row["p_holm"], alpha)
    return [mean_sd(row["auc_mean"], row["auc_sd"]), mean_sd(row["specificity_mean"], row["specificity_sd"]),
            mean_sd(row["sensitivity_mean"], row["sensitivity_sd"]),
            "reference" if row["best"] else p_value + (" (small sample)" if _small(row) and p_value != "n/a" else "")]


def _model_cells(inputs: ReportInputs, configuration: str, row: pd.Series) -> list:
    backbone, weights, method = model_text(inputs.configs[configuration].model)
    name = (join([tag("strong", row["variant"]), " (best; small sample)" if _small(row) else ""]) if row["best"]
            else row["variant"])
    return [name, f"{backbone} / {weights}", method, "yes" if row["clinical"] else "no", "yes" if row["ap"] else "no"]


def comparison_table(inputs: ReportInputs, variants: list[str], set_name: str, caption: str) -> Html:
    """One row per variant: mean (SD) over splits and p vs best in one set (+ the ensemble CI externally)."""
    alpha = inputs.comparisons.alpha
    summary = inputs.summary.set_index(["variant", "set"], drop=False)
    rows = []
    for variant in variants:
        row = summary.loc[(variant, set_name)]
        cells = [*_model_cells(inputs, row["configuration"], row), *_set_cells(row, alpha)]
        ensemble = inputs.evaluation.get("ensembles", {}).get(variant)
        rows.append(cells + ([ensemble_ci(row, ensemble)] if set_name == "external" else []))
    header = ["variant", "backbone / weights", "method", "clinical", "AP", *SET_COLUMNS]
    header += ["ensemble AUC (95 % CI)"] if set_name == "external" else []
    return table(header, rows, caption=caption, cls="numbers")


def paired_tables(inputs: ReportInputs, variants: list[str], title: str) -> Html:
    """The internal and the external table of one comparison, one above the other (printable width)."""
    return join([comparison_table(inputs, variants, "internal", f"{title}: internal validation (each split "
                                                                 "model on its validation patients)"),
                 comparison_table(inputs, variants, "external", f"{title}: external set (each split model; "
                                                                 "ensemble of the split models)")])


def table2_variants(inputs: ReportInputs) -> list[str]:
    """Every configuration without AP (the study's Table 2 compares models on the main frame)."""
    rows = inputs.summary[(inputs.summary["set"] == "internal") & ~inputs.summary["ap"]]
    return list(rows["variant"])


def _is_image(inputs: ReportInputs, configuration: str) -> bool:
    return inputs.configs[configuration].image


def table3_variants(inputs: ReportInputs) -> list[str]:
    """The best image model (the best variant's, else the highest mean internal AUC among image
    configurations) +/- clinical features +/- AP, and the clinical-only baseline(s)."""
    rows = inputs.summary[inputs.summary["set"] == "internal"]
    images = rows[[_is_image(inputs, c) for c in rows["configuration"]]]
    if images.empty:
        return list(rows["variant"])
    reference = images[images["best"]].iloc[0] if images["best"].any() else best_summary_row(images)
    best_model = model_text(inputs.configs[reference["configuration"]].model)
    return [r["variant"] for _, r in rows.iterrows()
            if not _is_image(inputs, r["configuration"])
            or model_text(inputs.configs[r["configuration"]].model) == best_model]


def footnote(inputs: ReportInputs) -> Html:
    comp = inputs.comparisons
    return note(f"Mean (SD) over split models; each split's threshold is Youden's J on its validation patients "
                f"(internal sensitivity and specificity are therefore optimistic). Best: {comp.best} "
                f"({comp.best_rule}; validation patients also chose each run's best epoch and the "
                f"thresholds; the external set chose nothing). p vs best - internal: corrected resampled t-test "
                f"(Nadeau-Bengio) of the per-split AUCs, because splits share most training patients; external: "
                f"paired DeLong test of the split ensembles. * significant after Holm correction over "
                f"{comp.n_comparisons} comparisons (Holm-adjusted p < {comp.alpha}).{''.join(identical_note(comp))} "
                f"Ensemble: mean probability of the split models, AUC with DeLong 95 % CI. Bonferroni- and "
                f"Holm-adjusted p-values, the plain paired t-test and per-split DeLong tests: "
                f"{inputs.eval_dir / 'summary.csv'}.")


def validation_uses_block(inputs: ReportInputs) -> Html:
    """What validation data chose (epochs, thresholds, best variant, the demo's clinical step) and
    that the external set chose nothing, from the runs and evaluation.json."""
    images = any(_is_image(inputs, c) for c in inputs.configs)
    uses, others = validation_uses(early_stopping=images, best=inputs.evaluation.get("best"),
                                   rule=inputs.comparisons.best_rule or None, step=clinical_step(inputs.summary))
    return join([tag("h3", "What validation data was used for"), bullet_list(uses), note(" ".join(others))])


def small_sample_notice(evaluation: dict) -> Html:
    """evaluation.json `small_sample` warnings as a notice above the tables ('' when none is small)."""
    warnings = (evaluation.get("small_sample") or {}).get("warnings") or []
    if not warnings:
        return join([])
    return tag("p", "Warning: " + " ".join(as_sentence(w) for w in warnings), cls="notice", id="small-sample")


def tables_section(inputs: ReportInputs) -> Html:
    return section("comparison", "Model comparison (Tables 2 and 3)", small_sample_notice(inputs.evaluation),
                   tag("h3", "Table 2 shape: backbone x weights x fine-tuning method (main frame, no AP)"),
                   paired_tables(inputs, table2_variants(inputs), "Table 2"),
                   tag("h3", "Table 3 shape: the best image model +/- augmented prediction (AP) +/- clinical "
                             "features, with the clinical-only baseline"),
                   paired_tables(inputs, table3_variants(inputs), "Table 3"),
                   footnote(inputs), selection_block(inputs), development_sites_block(inputs),
                   validation_uses_block(inputs))
