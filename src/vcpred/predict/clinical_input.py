"""The one clinical-input policy of `vcpred predict` (one patient), `predict --manifest` and the viewer
(`vcpred serve`): which values a model needs, what is refused, what is flagged.

Refused (an error naming the value; CLI: `error: ...` exit 2, manifest: the patient's `error`, the
others go on; viewer: 422):
- a value the model needs but that was not given (unless imputation was asked for: --allow-missing);
- a name the model does not use (one patient and the viewer; a manifest may hold other columns);
- a numeric value that is not a finite number (text, NaN, inf, 1e400);
- an impossible value: outside the physical limits of the columns vcpred knows (LIMITS of
  vcpred.cohort.clinical_policy, the one table `cohort check` and training apply too: age above 0 and
  at most 125 years, BMI 7-150 kg/m2, days from fracture to MRI 0-36500, BMD T-score -10 to +10,
  0/1 flags); a column whose development values were only two (a 0/1 flag) takes only those; for a
  column vcpred knows no limits of, a value beyond the training range widened by its own width on
  each side (a probable typo);
- a category never seen in training (it would encode as all zeros: "none of the known categories").

Flagged (accepted, the model extrapolates): a number outside the TRAINING range recorded in the
bundle (`clinical_ranges`, development min-max written by `vcpred export`; older bundles: training
mean +- 3 SD). The flag is in `prediction.json` (`clinical_flags`, and `warnings`), the report, the
CLI's stderr, `predictions.csv` (`outside_training_range`), `summary.json` and the viewer's page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vcpred.cohort.clinical_policy import LIMITS, UNITS, Limit
from vcpred.cohort.manifest import is_missing, parse_float
from vcpred.errors import ConfigError
from vcpred.predict.bundle import Bundle

FALLBACK_SD = 3.0


class ClinicalValueError(ConfigError):
    """A clinical value the policy refuses (the viewer answers 422)."""

    status = 422


@dataclass
class ClinicalCheck:
    values: dict  # column -> typed value or None
    imputed: dict = field(default_factory=dict)  # column -> training median used (median over splits)
    warnings: list[str] = field(default_factory=list)  # everything said about the inputs
    flags: list[dict] = field(default_factory=list)  # values outside the training range


def _encodings(bundle: Bundle, name: str) -> list:
    return [next(c for c in m.preprocessor.columns if c.name == name) for m in bundle.models]


def _numeric_field(bundle: Bundle, name: str) -> dict:
    encodings = _encodings(bundle, name)
    recorded = bundle.clinical_ranges.get(name)
    if recorded:
        low, high, source = recorded["min"], recorded["max"], "development min-max"
    else:
        mean, sd = float(np.mean([e.mean for e in encodings])), float(np.mean([e.std for e in encodings]))
        low, high, source = mean - FALLBACK_SD * sd, mean + FALLBACK_SD * sd, "training mean +- 3 SD"
    values = (recorded or {}).get("values")
    limit = LIMITS.get(name)
    if values and limit is None:
        limit = Limit(min(values), max(values), values=tuple(float(v) for v in values),
                      why="the development patients had only these values")
    if limit is None:  # no physical limits known: the training range widened by its own width is a typo
        span = max(high - low, abs(high) * 0.1, 1.0)
        limit = Limit(low - span, high + span, why="far outside the training range (a typo?)")
    return {"name": name, "kind": "numeric", "unit": UNITS.get(name, ""), "min": low, "max": high,
            "range_source": source,
            "limits": {"low": limit.low, "high": limit.high, "low_open": limit.low_open, "why": limit.why},
            "plausible": [limit.low, limit.high], "values": list(limit.values) if limit.values else None,
            "median": float(np.median([e.median for e in encodings]))}


def form_fields(bundle: Bundle) -> list[dict]:
    """One entry per clinical column the model uses, in the model's order: kind, unit, training range,
    limits (numbers) or choices (categories). The viewer builds its form from these."""
    fields = []
    for name in bundle.clinical_columns:
        encodings = _encodings(bundle, name)
        if encodings[0].kind == "numeric":
            fields.append(_numeric_field(bundle, name))
        else:
            choices = sorted({c for e in encodings for c in e.categories or []})
            fields.append({"name": name, "kind": "categorical", "unit": UNITS.get(name, ""), "choices": choices})
    return fields


def _given(raw) -> bool:
    return raw is not None and not (isinstance(raw, str) and (raw.strip() == "" or is_missing(raw)))


def _limit_of(f: dict) -> Limit:
    values = f.get("values")
    return Limit(f["limits"]["low"], f["limits"]["high"], f["limits"]["low_open"], f["limits"]["why"],
                 tuple(values) if values else None)


def _number(f: dict, raw) -> tuple[float, dict | None]:
    """The typed value, and its flag when outside the training range; ClinicalValueError when refused."""
    name = f["name"]
    if isinstance(raw, bool):
        raise ClinicalValueError(f"clinical value {name}={raw!r} must be a number")
    value = float(raw) if isinstance(raw, (int, float)) else parse_float(str(raw).strip())
    if value is None or not math.isfinite(value):
        raise ClinicalValueError(f"clinical value {name}={raw!r} must be a number (finite, e.g. "
                                 f"{f['median']:.4g})")
    limit = _limit_of(f)
    refusal = limit.refusal(name, value)
    if refusal:
        raise ClinicalValueError(f"clinical value {refusal}; check the value")
    if limit.values is None and not f["min"] <= value <= f["max"]:
        unit = f" {f['unit']}" if f.get("unit") else ""
        message = (f"{name}={value:g}{unit} is outside the training range {f['min']:.4g} to {f['max']:.4g} "
                   f"({f['range_source']}): the model extrapolates")
        return value, {"name": name, "value": value, "training_min": f["min"], "training_max": f["max"],
                       "range_source": f["range_source"], "message": message}
    return value, None


def _imputation(bundle: Bundle, name: str, kind: str) -> str:
    if kind != "numeric":
        return "'missing' category"
    return f"median {float(np.median([e.median for e in _encodings(bundle, name)])):.4g}"


def check_clinical(bundle: Bundle, given: dict, *, allow_missing: bool, strict_keys: bool = True) -> ClinicalCheck:
    """Typed clinical values for the model's columns under the policy above: ClinicalValueError for a
    refused value (missing, unknown name, not a number, impossible, unknown category), flags for
    values outside the training range. given: name -> text (CLI), typed value (manifest) or JSON value
    (viewer); None, '' and the manifest's missing tokens are missing."""
    needed = bundle.clinical_columns
    unknown = sorted(set(given) - set(needed))
    if unknown and strict_keys:
        raise ClinicalValueError(f"unknown clinical value(s) {', '.join(unknown)}: this model uses "
                                 f"{', '.join(needed) or 'no clinical values'}")
    fields = {f["name"]: f for f in form_fields(bundle)} if needed else {}
    check = ClinicalCheck({})
    missing = [name for name in needed if not _given(given.get(name))]
    if missing and not allow_missing:
        raise ClinicalValueError(f"clinical value(s) {', '.join(missing)} needed by this model but not given; "
                                 "give them (in the manifest's cells; `vcpred predict`: --clinical NAME=VALUE; the "
                                 "viewer: its form), or ask for imputation with the training medians "
                                 "(--allow-missing; in the viewer 'impute missing values')")
    for name in needed:
        f, raw = fields[name], given.get(name)
        if not _given(raw):
            check.values[name] = None
            check.imputed[name] = _imputation(bundle, name, f["kind"])
            continue
        if f["kind"] == "numeric":
            value, flag = _number(f, raw)
            if flag:
                check.flags.append(flag)
        else:
            value = str(raw).strip()
            if value not in f["choices"]:
                raise ClinicalValueError(f"clinical value {name}={value!r} is not a category the model knows; "
                                         f"use one of {', '.join(f['choices'])}")
        check.values[name] = value
    check.warnings = [flag["message"] for flag in check.flags]
    check.warnings += [f"{name} missing: imputed with the training {value} (--allow-missing)"
                       for name, value in check.imputed.items()]
    return check
