"""Failure analysis: the most confident wrong external predictions with their clinical values."""

from __future__ import annotations

import math

from vcpred.report.cases import classified, most_confident_wrong
from vcpred.html import Html, note, section, table, tag
from vcpred.report.inputs import ReportInputs

COUNT = 10


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _clinical(value) -> str:
    if _missing(value):
        return "missing"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _number(value) -> str:
    return "n/a" if _missing(value) else f"{value:.3f}"


def failures_section(inputs: ReportInputs, count: int = COUNT) -> Html:
    undefined = inputs.undefined_threshold()
    if undefined:  # no threshold: no patient is predicted positive or negative, so none is wrong
        return section("failures", "Failure analysis",
                       note(f"No failure analysis: the development threshold of the ensemble of {inputs.chosen} "
                            f"is {undefined}."))
    table_all = classified(inputs)
    wrong = most_confident_wrong(table_all, count)
    columns = list(inputs.cohort.clinical_columns)
    rows = []
    for _, case in wrong.iterrows():
        record = next((r for r in inputs.cohort.records if r.patient_id == case["patient_id"]), None)
        clinical = [_clinical(record.clinical.get(c)) if record else "not in manifest" for c in columns]
        rows.append([case["patient_id"], case["outcome"], case["label"], _number(case["probability"]),
                     _number(case["threshold"]), (record.site if record else None) or "-",
                     (record.level if record else None) or "-", *clinical])
    n_wrong = int((table_all["predicted"] != table_all["label"]).sum())
    summary = (f"{n_wrong} of {len(table_all)} labelled external patients are misclassified by the ensemble of "
               f"{inputs.chosen} at its development threshold; the {len(wrong)} most confident errors "
               "(largest distance between probability and outcome) are listed with their manifest values.")
    body = (table(["patient", "prediction", "label", "probability", "threshold", "site", "level", *columns], rows,
                  cls="numbers") if rows else note("No misclassified external patient."))
    return section("failures", "Failure analysis", tag("p", summary), body,
                   note("Look for shared traits (site, level, a clinical value, missing values) before trusting "
                        "the model on similar patients."))
