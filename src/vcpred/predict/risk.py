"""The risk category of a prediction: computed by one rule and worded alike in every output (the CLI
line, prediction.json, predictions.csv, report.html, the heat-map PNG title and so the DICOM Secondary
Capture, the viewer's result panel).

- `category`: the side of the development threshold the ensemble probability falls on: "high risk of
  collapse" when probability >= threshold, else "low risk of collapse".
- `borderline`: the split models fall on both sides of the threshold (the lowest below it, the
  highest at or above it), so that category is uncertain.
- `risk`: what a person is shown: "borderline" when borderline, else the category.

No torch here: the report and the Secondary Capture writer read results without loading a model.
"""

from __future__ import annotations

CATEGORIES = ("high risk of collapse", "low risk of collapse")
BORDERLINE = "borderline"
BORDERLINE_REASON = "the split models fall on both sides of the threshold"


def risk_fields(probability: float, low: float, high: float, threshold: float) -> dict:
    """{category, borderline, risk} of an ensemble probability, its split models' min-max and the threshold."""
    category = CATEGORIES[0] if probability >= threshold else CATEGORIES[1]
    borderline = bool(low < threshold <= high)
    return {"category": category, "borderline": borderline, "risk": BORDERLINE if borderline else category}


def risk_of(result: dict) -> str:
    """'borderline', 'high risk of collapse' or 'low risk of collapse' (a prediction.json written
    before `risk` existed: from its category and borderline flag)."""
    if result.get("risk"):
        return str(result["risk"])
    return BORDERLINE if result.get("borderline") else str(result["category"])


def risk_text(result: dict) -> str:
    """The risk in a sentence: 'borderline: the split models fall on both sides of the threshold', or the category."""
    risk = risk_of(result)
    return f"{risk}: {BORDERLINE_REASON}" if risk == BORDERLINE else risk


def risk_label(result: dict) -> str:
    """The risk as a heading: 'Borderline', 'High risk of collapse' or 'Low risk of collapse'."""
    risk = risk_of(result)
    return risk[:1].upper() + risk[1:]


def risk_class(result: dict) -> str:
    """'borderline', 'high' or 'low': the colour a page gives the risk."""
    risk = risk_of(result)
    return BORDERLINE if risk == BORDERLINE else "high" if risk.startswith("high") else "low"
