"""Markdown tables shaped like the study's Tables 2 (internal) and 3 (external)."""

from __future__ import annotations

import math

import pandas as pd

from vcpred import RESEARCH_NOTICE
from vcpred.evaluate.compare import Comparisons
from vcpred.evaluate.small_sample import as_sentence
from vcpred.evaluate.summary import markdown_sections
from vcpred.evaluate.transfer import chosen_sentence, flag_sentence, none_sentence, rule_sentence


def mean_sd(mean: float, sd: float) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.4f}" if sd is None or math.isnan(sd) else f"{mean:.4f} ({sd:.4f})"


def _missing(p) -> bool:
    return p is None or (isinstance(p, float) and math.isnan(p))


def p_text(p: float, p_holm: float | None = None, alpha: float = 0.05) -> str:
    """'0.011*', '< 0.001*', '0.172'; star when the Holm-adjusted p is below alpha."""
    if _missing(p):
        return "n/a"
    text = "< 0.001" if p < 0.001 else f"{p:.3f}"
    return text + ("*" if not _missing(p_holm) and p_holm < alpha else "")


def _model(row: pd.Series) -> str:
    if row["best"] != "true":
        return str(row["variant"])
    return f"**{row['variant']}** (best{SMALL_MARK if row.get('small_sample') == 'true' else ''})"


SMALL_MARK = "; small sample, see the warning above"


def _section(summary: pd.DataFrame, set_name: str, alpha: float) -> list[str]:
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
                 "-" if best else p_text(row["p_value"], row["p_holm"], alpha) + _small(row)]
        if set_name == "external":
            cells.append("-" if best else f"{p_text(row.get('p_split_delong_median', math.nan))} "
                                          f"({int(row.get('n_splits_significant', 0) or 0)}/{row['n_splits']})")
            cells.append(_ensemble_cell(row))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def _small(row: pd.Series) -> str:
    """' (small sample)' after a p-value of a small set, so no star reads as evidence by itself."""
    return " (small sample)" if row.get("small_sample") == "true" and not _missing(row["p_value"]) else ""


def _ensemble_cell(row: pd.Series) -> str:
    auc = row.get("ensemble_auc", math.nan)
    if auc is None or math.isnan(auc):
        return "n/a"
    return f"{auc:.4f} ({row['ensemble_auc_ci_low']:.4f}-{row['ensemble_auc_ci_high']:.4f})"


def tables_markdown(ev, summary: pd.DataFrame) -> str:
    """The two tables with footnotes on tests and multiplicity."""
    comp = ev.comparisons
    m, alpha = comp.n_comparisons, comp.alpha
    n_splits = int(summary["n_splits"].max()) if len(summary) else 0
    lines = [f"# Evaluation of {ev.runs_dir}", "", f"_{RESEARCH_NOTICE}_", "",
             f"Mean (SD) over up to {n_splits} splits. AP = augmented prediction ({ev.aggregate} over "
             f"frames). Best configuration: **{comp.best}** ({comp.best_rule}). "
             f"\\* significant after Holm correction over {m} comparisons (Holm-adjusted p < {alpha}).",
             *identical_note(comp), "", *_best_warning(ev.small_sample),
             "## Internal validation (shaped like Table 2)", "",
             "Threshold: Youden's J on each split's validation predictions (so internal sensitivity and "
             "specificity are optimistic). p-value: corrected resampled t-test (Nadeau-Bengio) of the "
             "per-split AUCs vs the best; splits share most training patients, so a plain paired t-test "
             "would be too optimistic (it is in summary.csv as p_over_splits_t).", ""]
    lines += _section(summary, "internal", alpha)
    lines += ["", "## External validation (shaped like Table 3)", "",
              "Each split model scored on the external set at its own validation threshold. p-value: "
              "paired DeLong test of the split ensemble (mean of the split models' probabilities) vs the "
              "best one; split models: median p of the per-split paired DeLong tests and how many splits "
              f"are significant at the Bonferroni level {comp.bonferroni_level:.4f}. Bonferroni- and "
              "Holm-adjusted p-values are in summary.csv.", ""]
    lines += _section(summary, "external", alpha)
    undefined = [f"{v.label}: ensemble threshold {e.threshold_note}." for v, e in ev.ensembles.items() if e.threshold_note]
    lines += ["", *undefined] if undefined else []
    lines += _transfer_lines(ev.transfer)
    lines += markdown_sections(ev)
    if ev.skipped:
        lines += ["", f"Skipped {len(ev.skipped)} unfinished run(s): " +
                  "; ".join(f"{p} ({r})" for p, r in ev.skipped)]
    return "\n".join(lines) + "\n"


def _transfer_lines(transfer) -> list[str]:
    """Under Table 3 (transfer.py): the chosen model's sentence in bold when it is flagged, a line per
    flagged variant (or that none is), and the rule."""
    if transfer is None:
        return []
    chosen = chosen_sentence(transfer)
    flagged = [f"- {flag_sentence(label, v, transfer)}" for label, v in transfer.flagged.items()]
    return ["", *([f"**{chosen}**", ""] if chosen else []), *(flagged or [none_sentence(transfer)]), "",
            rule_sentence(transfer)]


def _best_warning(small_sample: dict | None) -> list[str]:
    """Under the 'Best configuration' sentence: the small-sample warnings, so the best is read with them."""
    warnings = (small_sample or {}).get("warnings") or []
    return [f"**Warning:** {' '.join(as_sentence(w) for w in warnings)}", ""] if warnings else []


def identical_note(comparisons: Comparisons) -> list[str]:
    """One sentence per variant merged into an identical one (shown and counted once)."""
    return [f" {a} gives the same predictions as {b} and is shown once, as {b}."
            for a, b in comparisons.identical_variants.items()]
