"""The one-page, self-contained HTML report for a clinician (image embedded as base64)."""

from __future__ import annotations

import base64
from html import escape

STYLE = """body{font-family:system-ui,Arial,sans-serif;max-width:60em;margin:1.5em auto;color:#222}
.notice{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em;font-weight:bold}
.synthetic{background:#fde2e1;border:2px solid #b00020;color:#8a1c1c;font-size:1.15em}
.risk{font-size:1.4em;margin:.4em 0} .high{color:#b00020} .low{color:#1b5e20} .borderline{color:#8a5a00}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
img{max-width:100%;border:1px solid #ccc} .small{font-size:.85em;color:#555}"""


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)


def _source(result: dict) -> str:
    sequences = (result.get("provenance") or {}).get("sequences") or {}
    return "; ".join(f"{name}: {info.get('source', '?')}" for name, info in sequences.items()) or "n/a"


def _synthetic_banner(result: dict) -> str:
    """The training-data warning (prediction.json `warning`) as a banner, or nothing."""
    warning = result.get("warning")
    if not warning:
        return ""
    return f'<p class="notice synthetic" id="synthetic-warning">{escape(warning[0].upper() + warning[1:])}.</p>\n'


def _risk_line(result: dict, high: bool) -> str:
    """The category in colour, or 'borderline' when the split models fall on both sides of the threshold."""
    if result.get("borderline"):
        return (f'<p class="risk borderline">Borderline: {_percent(result["probability"])} (threshold '
                f'{_percent(result["threshold"])}); the split models range from {_percent(result["interval"]["low"])} '
                f'to {_percent(result["interval"]["high"])}, on both sides of the threshold, so the category '
                f'({escape(result["category"])}) is uncertain</p>')
    return (f'<p class="risk {"high" if high else "low"}">{escape(result["category"].capitalize())}:\n'
            f' {_percent(result["probability"])} (threshold {_percent(result["threshold"])})</p>')


def report_html(result: dict, png: bytes | None) -> str:
    """HTML text of the report for one prediction.json `result` and its heat-map PNG bytes."""
    high = result["category"].startswith("high")
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
    frames = [(f"frame offset {f['offset']} (slice {f['slice']})", _percent(f["probability"]))
              for f in result["per_frame"]]
    image = (f'<img alt="heat map on the sagittal slice" src="data:image/png;base64,'
             f'{base64.b64encode(png).decode()}">' if png else "<p>No heat map for this model.</p>")
    roi = result.get("roi")
    warnings = "".join(f"<li>{escape(w)}</li>" for w in result.get("warnings", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vcpred: {escape(result['patient_id'])}</title>
<style>{STYLE}</style></head><body>
<p class="notice">{escape(result['notice'].capitalize())}. This report does not replace clinical judgement.</p>
{_synthetic_banner(result)}<h1>Vertebral collapse risk: {escape(result['patient_id'])}</h1>
{_risk_line(result, high)}
<table>{_rows(numbers)}</table>
{image}
<p class="small">Heat map: {escape((result.get('heatmap') or {}).get('method', 'n/a'))}, averaged over split models,
on the main frame; green box: ROI{'' if not roi else f" (slice {roi['slice']}, box {roi['box']})"}; dashed: model input.
It shows where the model looked, not a diagnosis. {escape((result.get('heatmap') or {}).get('note', ''))}</p>
<h2>Inputs</h2><table>{_rows(clinical or [('clinical values', 'none used')])}</table>
<p class="small">Image: {escape(_source(result))}</p>
{'<h2>Per frame</h2><table>' + _rows(frames) + '</table>' if frames else ''}
{'<h2>Warnings</h2><ul>' + warnings + '</ul>' if warnings else ''}
<p class="small">Model {escape(result['model_id'])}; precision {escape(result['precision'])}.
{escape(result['notice'].capitalize())}.</p>
</body></html>
"""
