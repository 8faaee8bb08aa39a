"""The one-page, self-contained HTML report for a clinician (image embedded as base64), made with
the escaping builder vcpred.html."""

from __future__ import annotations

from vcpred.html import Html, bullet_list, definition_table, document, png_image, tag
from vcpred.imaging.naming import named_slice, reference_sequence, series_text
from vcpred.predict.risk import BORDERLINE, risk_class, risk_label, risk_of, risk_text

STYLE = """body{font-family:system-ui,Arial,sans-serif;max-width:60em;margin:1.5em auto;color:#222}
.notice{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em;font-weight:bold}
.synthetic{background:#fde2e1;border:2px solid #b00020;color:#8a1c1c;font-size:1.15em}
.risk{font-size:1.4em;margin:.4em 0} .high{color:#b00020} .low{color:#1b5e20} .borderline{color:#8a5a00}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
img{max-width:100%;border:1px solid #ccc} .small{font-size:.85em;color:#555}"""


def patient_heading(result: dict) -> str:
    """The patient as the outputs name it: the id, and the vertebral level when one was given
    ('P7, level L1'); the report's title, the heat-map title and the Secondary Capture."""
    level = result.get("level")
    return f"{result['patient_id']}, level {level}" if level else str(result["patient_id"])


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _rows(pairs: list[tuple[str, str]]) -> Html:
    return definition_table(pairs, cls=None)


def _source(result: dict) -> str:
    sequences = (result.get("provenance") or {}).get("sequences") or {}
    return "; ".join(f"{name}: {info.get('source', '?')}" for name, info in sequences.items()) or "n/a"


def _synthetic_banner(result: dict) -> Html:
    """The training-data warning (prediction.json `warning`) as a banner, or nothing."""
    warning = result.get("warning")
    if not warning:
        return Html("")
    return tag("p", f"{warning[0].upper() + warning[1:]}.", class_="notice synthetic", id="synthetic-warning")


def _risk_line(result: dict) -> Html:
    """The risk in colour (vcpred.predict.risk); when borderline, the split models' range and the
    uncertain category beside it."""
    numbers = f"{_percent(result['probability'])} (threshold {_percent(result['threshold'])})"
    if risk_of(result) == BORDERLINE:
        said = risk_text(result)
        return tag("p", f"{said[:1].upper() + said[1:]}. {numbers}; they range from "
                        f"{_percent(result['interval']['low'])} to {_percent(result['interval']['high'])}, so the "
                        f"category ({result['category']}) is uncertain", cls=f"risk {risk_class(result)}")
    return tag("p", f"{risk_label(result)}:\n {numbers}", cls=f"risk {risk_class(result)}")


def _series(result: dict) -> str:
    """The series read (its slices are the ones named), as series lists name it (vcpred.imaging.naming)."""
    sequence = reference_sequence(result.get("provenance"))
    return f"; series read: {series_text(sequence)}" if sequence else ""


def report_html(result: dict, png: bytes | None) -> str:
    """HTML text of the report for one prediction.json `result` and its heat-map PNG bytes."""
    numbers = [
        ("probability of vertebral collapse", _percent(result["probability"])),
        ("spread over split models", f"SD {_percent(result['sd'])}, range {_percent(result['interval']['low'])} "
                                     f"to {_percent(result['interval']['high'])} ({len(result['per_model'])} models)"),
        ("risk threshold", f"{_percent(result['threshold'])} ({result['threshold_rule']})"),
        ("augmented prediction", f"{result['ap']} ({result['aggregate']} over {len(result['per_frame'])} frames)"
         if result["per_frame"] else "n/a (clinical values only)"),
    ]
    flagged = {f["name"]: f for f in result.get("clinical_flags", [])}
    clinical = [(k, "missing" if v is None else str(v) + (
        f" (outside the training range {flagged[k]['training_min']:.4g} to {flagged[k]['training_max']:.4g}: "
        "the model extrapolates)" if k in flagged else "")) for k, v in result["clinical"].items()]
    provenance = result.get("provenance")
    frames = [(f"frame offset {f['offset']:+d}: {named_slice(provenance, f['slice'])}", _percent(f["probability"]))
              for f in result["per_frame"]]
    image = png_image(png, "heat map on the sagittal slice") if png else tag("p", "No heat map for this model.")
    roi = result.get("roi")
    roi_where = f" on {named_slice(provenance, roi['slice'])}, box {roi['box']}" if roi else ""
    heatmap = result.get("heatmap") or {}
    warnings = result.get("warnings", [])
    notice = result["notice"].capitalize()
    body = [
        tag("p", f"{notice}. This report does not replace clinical judgement.", cls="notice"),
        _synthetic_banner(result),
        tag("h1", f"Vertebral collapse risk: {patient_heading(result)}"),
        _risk_line(result),
        _rows(numbers),
        image,
        tag("p", f"Heat map: {heatmap.get('method', 'n/a')}, averaged over split models,\non the main frame; "
                 f"green box: ROI{roi_where}; dashed: model input.\nIt shows where the model looked, not a "
                 f"diagnosis. {heatmap.get('note', '')}", cls="small"),
        tag("h2", "Inputs"),
        _rows(clinical or [("clinical values", "none used")]),
        tag("p", f"Image: {_source(result)}{_series(result)}", cls="small"),
        *([tag("h2", "Per frame"), _rows(frames)] if frames else []),
        *([tag("h2", "Warnings"), bullet_list(warnings)] if warnings else []),
        tag("p", f"Model {result['model_id']}; precision {result['precision']}.\n{notice}.", cls="small"),
    ]
    return document(f"vcpred: {patient_heading(result)}", STYLE, body)
