"""Discrimination, calibration and clinical utility on the external set: figures and the split
ensembles' numbers (evaluation.json), and subgroup metrics when the evaluation had a manifest."""

from __future__ import annotations

from vcpred.report.figures import calibration_png, decision_png, roc_png, shown_variants
from vcpred.report.html import Html, note, png_image, section, table, tag
from vcpred.report.inputs import ReportInputs


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def ensemble_table(inputs: ReportInputs) -> Html:
    rows = []
    for variant, m in inputs.evaluation.get("ensembles", {}).items():
        name = tag("strong", variant) if variant == inputs.chosen else variant
        rows.append([name, f"{_number(m.get('auc'), 4)} ({_number(m.get('auc_ci_low'), 4)}-"
                           f"{_number(m.get('auc_ci_high'), 4)})",
                     _number(m.get("threshold")), _number(m.get("sensitivity")), _number(m.get("specificity")),
                     _number(m.get("calibration_slope")), _number(m.get("calibration_intercept")),
                     _number(m.get("brier")), f"{m.get('n')} ({m.get('n_cases')} events)"])
    header = ["ensemble", "AUC (DeLong 95 % CI)", "threshold", "sensitivity", "specificity", "calibration slope",
              "calibration intercept", "Brier", "patients scored"]
    return table(header, rows, cls="numbers",
                 caption="Split ensembles on the external set: threshold = median of the split models' validation "
                         "thresholds; calibration slope and intercept (calibration-in-the-large) by logistic "
                         "recalibration")


def subgroup_table(inputs: ReportInputs) -> Html:
    groups = (inputs.evaluation.get("subgroups") or {}).get(inputs.chosen)
    if not groups:
        return note("No subgroup metrics: evaluate with --manifest to get them per sex, age band and site.")
    rows = [[column, value, m.get("n"), m.get("n_cases"),
             f"{_number(m.get('auc'))} ({_number(m.get('auc_ci_low'))}-{_number(m.get('auc_ci_high'))})",
             _number(m.get("sensitivity")), _number(m.get("specificity"))]
            for column, values in groups.items() for value, m in values.items()]
    return table(["subgroup", "value", "patients", "events", "AUC (95 % CI)", "sensitivity", "specificity"], rows,
                 cls="numbers", caption=f"Subgroups of the external set, ensemble of {inputs.chosen} at its "
                                        "threshold (small groups: wide or missing CIs)")


def _figure(png: bytes | None, alt: str, caption: str) -> Html:
    if png is None:
        return note(f"{alt}: not drawn (the external set needs labelled patients of both classes).")
    return tag("figure", png_image(png, alt), tag("figcaption", caption))


def performance_section(inputs: ReportInputs) -> Html:
    shown = shown_variants(inputs)
    return section(
        "performance", "Discrimination, calibration and decision curves (external set)",
        _figure(roc_png(inputs), "ROC curves",
                "ROC curves on the external set, one panel per variant: the band spans the split models "
                "(min to max sensitivity), the dashed line is their mean, the red line the split ensemble."),
        ensemble_table(inputs),
        tag("div", _figure(calibration_png(inputs, shown), "calibration plot",
                           f"Calibration of the ensembles of {', '.join(shown)} (10 bins)."),
            _figure(decision_png(inputs, shown), "decision curve",
                    "Net benefit of acting on the ensemble's probability vs treating all or none."), cls="pair"),
        tag("h3", "Subgroups"), subgroup_table(inputs))
