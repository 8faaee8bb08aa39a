"""Discrimination, calibration and clinical utility on the external set: figures and the split
ensembles' numbers (evaluation.json), and subgroup metrics when the evaluation had a manifest."""

from __future__ import annotations

from vcpred.evaluate.per_split import external_reason
from vcpred.evaluate.transfer import WORDS, chosen_sentence, flag_sentence, none_sentence, rule_sentence
from vcpred.bundle.method import finite
from vcpred.report.figures import calibrated, calibration_png, decision_png, roc_png, shown_variants
from vcpred.html import Html, bullet_list, join, note, png_image, section, table, tag
from vcpred.report.inputs import ReportInputs


def _number(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if finite(value) else "n/a"


def _count(value) -> str:
    return "n/a" if value is None else str(value)


def transfer_notice(inputs: ReportInputs) -> Html:
    """Above the external figures: which variants collapse at the external set or fall below the reference
    there (evaluate/transfer.py), the chosen one first and plainly; the rule under it."""
    transfer = inputs.transfer
    if transfer is None:
        return note("This evaluation records no transfer check (written by an earlier vcpred): evaluate again to see "
                    "which variants collapse at the external set.")
    if not transfer.flagged:
        return note(f"{none_sentence(transfer)} {rule_sentence(transfer)}")
    chosen = chosen_sentence(transfer)
    flagged = [flag_sentence(label, v, transfer) for label, v in transfer.flagged.items()]
    return join([tag("div", tag("p", chosen) if chosen else "",
                     tag("p", f"Flagged at the external set ({len(flagged)} of {len(transfer.variants)} variants):"),
                     bullet_list(flagged), cls="notice", id="transfer"),
                 note(rule_sentence(transfer))])


def _flag_mark(inputs: ReportInputs, variant: str) -> str:
    """' (flagged: collapse at the external set)' after a flagged variant's name in the ensemble table."""
    found = inputs.transfer.variants.get(variant) if inputs.transfer is not None else None
    return f" (flagged: {'; '.join(WORDS[f] for f in found.flags)})" if found is not None and found.flags else ""


def ensemble_table(inputs: ReportInputs) -> Html:
    rows, undefined = [], []
    for variant, m in inputs.evaluation.get("ensembles", {}).items():
        name = join([tag("strong", variant) if variant == inputs.chosen else variant, _flag_mark(inputs, variant)])
        auc = (f"{_number(m.get('auc'), 4)} ({_number(m.get('auc_ci_low'), 4)}-{_number(m.get('auc_ci_high'), 4)})"
               if finite(m.get("auc")) else f"n/a ({external_reason(m)})")
        why = inputs.undefined_threshold(variant)
        if why:
            undefined.append(note(f"{variant}: threshold {why}."))
        threshold = "undefined" if why else _number(m.get("threshold"))
        rows.append([name, auc, threshold, _number(m.get("sensitivity")), _number(m.get("specificity")),
                     _number(m.get("calibration_slope")), _number(m.get("calibration_intercept")),
                     _number(m.get("brier")), f"{_count(m.get('n'))} ({_count(m.get('n_cases'))} events)"])
    header = ["ensemble", "AUC (DeLong 95 % CI)", "threshold", "sensitivity", "specificity", "calibration slope",
              "calibration intercept", "Brier", "patients scored"]
    return join([table(header, rows, cls="numbers",
                       caption="Split ensembles on the external set: threshold = median of the split models' "
                               "validation thresholds; calibration slope and intercept (calibration-in-the-large) "
                               "by logistic recalibration; \"flagged\": the transfer check above"), *undefined])


def subgroup_table(inputs: ReportInputs) -> Html:
    groups = (inputs.evaluation.get("subgroups") or {}).get(inputs.chosen)
    if not groups:
        return note("No subgroup metrics: evaluate with --manifest to get them per sex, age band and site.")
    rows = [[column, value, _count(m.get("n")), _count(m.get("n_cases")),
             f"{_number(m.get('auc'))} ({_number(m.get('auc_ci_low'))}-{_number(m.get('auc_ci_high'))})",
             _number(m.get("sensitivity")), _number(m.get("specificity"))]
            for column, values in groups.items() for value, m in values.items()]
    return table(["subgroup", "value", "patients", "events", "AUC (95 % CI)", "sensitivity", "specificity"], rows,
                 cls="numbers", caption=f"Subgroups of the external set, ensemble of {inputs.chosen} at its "
                                        "threshold (small groups: wide or missing CIs)")


def _why_not(inputs: ReportInputs, need: int = 2) -> str:
    """Why a figure of the chosen variant's external ensemble cannot be drawn, from its counts."""
    return external_reason(inputs.evaluation.get("ensembles", {}).get(inputs.chosen), need)


def _figure(png: bytes | None, alt: str, caption: str, why_not: str) -> Html:
    if png is None:
        return note(f"{alt}: not drawn ({why_not}).")
    return tag("figure", png_image(png, alt), tag("figcaption", caption))


def _calibration(inputs: ReportInputs, shown: list[str]) -> Html:
    """The calibration plot of the shown ensembles whose slope is a number (the legend quotes it)."""
    drawn = list(calibrated(inputs, shown))
    left_out = [v for v in shown if v not in drawn]
    missing = f"no calibration slope could be estimated for {', '.join(left_out)}" if left_out else ""
    caption = f"Calibration of the ensembles of {', '.join(drawn)} (10 bins)."
    caption += f" Not drawn: {missing}." if missing else ""
    return _figure(calibration_png(inputs, shown), "calibration plot", caption, missing or _why_not(inputs))


def performance_section(inputs: ReportInputs) -> Html:
    shown = shown_variants(inputs)
    return section(
        "performance", "Discrimination, calibration and decision curves (external set)",
        transfer_notice(inputs),
        _figure(roc_png(inputs), "ROC curves",
                "ROC curves on the external set, one panel per variant: the band spans the split models "
                "(min to max sensitivity), the dashed line is their mean, the red line the split ensemble.",
                _why_not(inputs, need=1)),
        ensemble_table(inputs),
        tag("div", _calibration(inputs, shown),
            _figure(decision_png(inputs, shown), "decision curve",
                    "Net benefit of acting on the ensemble's probability vs treating all or none.",
                    _why_not(inputs)), cls="pair"),
        tag("h3", "Subgroups"), subgroup_table(inputs))
