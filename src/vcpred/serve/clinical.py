"""The clinical form: which values the model needs, their units and training ranges, and the
server-side checks of what the page sends (the page runs the same checks first).

Ranges come from the bundle (`clinical_ranges`, development min/max written by `vcpred export`);
bundles exported before that get mean +- 3 SD of the training scaling instead. A value outside the
training range is accepted with a warning (the model extrapolates); one outside the plausible range
(the training range widened by its own width on each side) is refused as a probable typo.
"""

from __future__ import annotations

import math

import numpy as np

from vcpred.cohort.manifest import is_missing, parse_float
from vcpred.predict.bundle import Bundle
from vcpred.serve.errors import ServeError

# Display hints for the clinical columns vcpred's own cohorts use (docs/synthetic.md); other
# columns show no unit.
UNITS = {"age": "years", "bmi": "kg/m²", "bmd_tscore": "T-score", "days_to_mri": "days from fracture to MRI",
         "steroid": "1 = yes, 0 = no", "diabetes": "1 = yes, 0 = no", "sex": ""}
FALLBACK_SD = 3.0


class ClinicalInputError(ServeError):
    status = 422


def _encodings(bundle: Bundle, name: str) -> list:
    return [next(c for c in m.preprocessor.columns if c.name == name) for m in bundle.models]


def numeric_field(bundle: Bundle, name: str) -> dict:
    encodings = _encodings(bundle, name)
    recorded = bundle.clinical_ranges.get(name)
    if recorded:
        low, high, source = recorded["min"], recorded["max"], "development min-max"
    else:
        mean, sd = float(np.mean([e.mean for e in encodings])), float(np.mean([e.std for e in encodings]))
        low, high, source = mean - FALLBACK_SD * sd, mean + FALLBACK_SD * sd, "training mean +- 3 SD"
    span = max(high - low, abs(high) * 0.1, 1.0)
    return {"name": name, "kind": "numeric", "unit": UNITS.get(name, ""), "min": low, "max": high,
            "range_source": source, "plausible": [low - span, high + span],
            "values": (recorded or {}).get("values"),
            "median": float(np.median([e.median for e in encodings]))}


def form_fields(bundle: Bundle) -> list[dict]:
    """One entry per clinical column the model uses, in the model's order."""
    fields = []
    for name in bundle.clinical_columns:
        encodings = _encodings(bundle, name)
        if encodings[0].kind == "numeric":
            fields.append(numeric_field(bundle, name))
        else:
            choices = sorted({c for e in encodings for c in e.categories or []})
            fields.append({"name": name, "kind": "categorical", "unit": UNITS.get(name, ""), "choices": choices})
    return fields


def _given(raw) -> bool:
    return raw is not None and not is_missing(str(raw))


def check_values(fields: list[dict], clinical: dict, *, allow_missing: bool) -> list[str]:
    """Refuse missing (unless allow_missing), non-numeric, implausible or unknown-category values;
    return warnings for values outside the training range. Typing and encoding stay with predict."""
    missing = [f["name"] for f in fields if not _given(clinical.get(f["name"]))]
    if missing and not allow_missing:
        raise ClinicalInputError(f"missing clinical value(s): {', '.join(missing)}; fill them in, or tick "
                                 "'impute missing values' to use the training medians")
    warnings = []
    for f in fields:
        raw = clinical.get(f["name"])
        if _given(raw):
            warnings += _check_one(f, raw)
    return warnings


def _check_one(f: dict, raw) -> list[str]:
    name, unit = f["name"], f" {f['unit']}" if f.get("unit") else ""
    if f["kind"] == "categorical":
        if str(raw) not in f["choices"]:
            raise ClinicalInputError(f"{name}={raw!r} is not a category the model knows; choose one of "
                                     f"{', '.join(f['choices'])}")
        return []
    value = parse_float(str(raw))
    if value is None or not math.isfinite(value):
        raise ClinicalInputError(f"{name}={raw!r} must be a number")
    if f.get("values") and value not in f["values"]:
        raise ClinicalInputError(f"{name}={raw!r} must be one of {', '.join(f'{v:g}' for v in f['values'])}")
    low, high = f["plausible"]
    if not low <= value <= high:
        raise ClinicalInputError(f"{name}={value:g}{unit} is far outside the training range "
                                 f"{f['min']:.4g} to {f['max']:.4g} (a typo?); check the value")
    if not f["min"] <= value <= f["max"]:
        return [f"{name}={value:g}{unit} is outside the training range {f['min']:.4g} to {f['max']:.4g} "
                f"({f['range_source']}): the model extrapolates"]
    return []
