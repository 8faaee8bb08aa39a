"""The whole report: one self-contained HTML page (inline CSS, figures as data URIs, no scripts)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from vcpred import RESEARCH_NOTICE, __version__, console
from vcpred.cohort.provenance import warning_sentence
from vcpred.hashing import atomic_write
from vcpred.report.cohort import cohort_section
from vcpred.report.failures import failures_section
from vcpred.report.gallery import gallery_section
from vcpred.html import Html, document, join, tag
from vcpred.report.inputs import ReportInputs, load_inputs
from vcpred.report.model_card import card_section
from vcpred.report.performance import performance_section
from vcpred.report.setup import setup_section
from vcpred.report import site_shift
from vcpred.report.tables import tables_section
from vcpred.report.tripod import tripod_section

# (anchor, title, builder): the table of contents and the page follow this order.
SECTIONS = [
    ("cohort", "Cohort and participant flow", cohort_section),
    (site_shift.ANCHOR, site_shift.TITLE, site_shift.site_shift_section),
    ("preprocessing", "Preprocessing and configurations", setup_section),
    ("comparison", "Model comparison (Tables 2 and 3)", tables_section),
    ("performance", "Discrimination, calibration and decision curves (external set)", performance_section),
    ("gallery", "Heat-map gallery", gallery_section),
    ("failures", "Failure analysis", failures_section),
    ("card", "Model card", card_section),
    ("tripod", "TRIPOD+AI checklist", lambda inputs: tripod_section(inputs, TITLES)),
]
TITLES = {anchor: title for anchor, title, _ in SECTIONS}

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Arial,sans-serif;max-width:78em;margin:1em auto;padding:0 1em;
 color:#1d2329;line-height:1.4;font-size:15px}
h1{font-size:1.7em;margin:.3em 0} h2{border-bottom:2px solid #4a6a8a;padding-bottom:.15em;margin-top:1.8em}
h3{margin:1.1em 0 .4em} code{font-size:.9em;background:#f1f3f5;padding:0 .2em}
.notice{background:#fff3cd;border:2px solid #d4a017;padding:.6em 1em;font-weight:bold;font-size:1.1em}
.synthetic{background:#fde2e1;border-color:#b00020;color:#8a1c1c}
.meta{color:#555;font-size:.9em} .note{color:#444;font-size:.88em}
table{border-collapse:collapse;margin:.6em 0;font-size:.86em} caption{text-align:left;font-weight:bold;padding:.3em 0}
td,th{border:1px solid #c8cdd2;padding:.2em .45em;text-align:left;vertical-align:top} thead th{background:#eef2f6}
table.numbers td{white-space:nowrap} table.numbers td:nth-child(-n+3){white-space:normal}
table.record th{background:#f6f8fa;width:16em}
table.checklist td:nth-child(4){min-width:22em} tr.group th{background:#dfe7ef}
.placeholder{background:#fde2e1;color:#8a1c1c;font-style:italic}
figure{margin:.6em 0} figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:.85em;color:#444}
.pair{display:flex;flex-wrap:wrap;gap:1em} .pair figure{flex:1 1 28em}
.gallery{display:grid;grid-template-columns:repeat(2,1fr);gap:.8em 1.2em} .cell h3{margin-top:0;font-size:1em}
h3.model{background:#eef2f6;padding:.25em .5em;margin-top:1.4em} .block{margin-bottom:1em}
.case img{width:100%} svg.flow{max-width:100%;height:auto}
.card{border:1px solid #c8cdd2;padding:0 1em;background:#fbfcfd}
nav ol{columns:2;font-size:.92em}
@media print{body{max-width:none;font-size:11px} section{break-inside:auto} figure,tr,.case{break-inside:avoid}
 .gallery{grid-template-columns:repeat(2,1fr)} nav{display:none} a{color:inherit}}
"""


def _synthetic(inputs: ReportInputs) -> Html:
    """A banner under the notice when the runs were trained on a `vcpred synth` cohort."""
    if not inputs.synthetic:
        return Html("")
    return tag("p", f"{warning_sentence()} Every model in this report was trained and evaluated on a synthetic "
                    f"cohort ({inputs.training_data['evidence']}); its numbers say nothing about real patients.",
               cls="notice synthetic", id="synthetic")


def _header(inputs: ReportInputs) -> Html:
    ev = inputs.evaluation
    made = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return join([
        tag("p", f"{RESEARCH_NOTICE} This report describes a research evaluation; it does not support "
                 "decisions about individual patients.", cls="notice", id="notice"),
        _synthetic(inputs),
        tag("h1", "Prediction of vertebral collapse after osteoporotic vertebral compression fracture"),
        tag("p", f"Evaluation {inputs.eval_dir} of runs {inputs.runs_dir}: {len(inputs.configs)} configurations, "
                 f"best {ev['best']} ({inputs.comparisons.best_rule}); chosen for the gallery, failures "
                 f"and card: {inputs.chosen}. AP aggregate: {ev.get('aggregate')}. Made by vcpred {__version__} "
                 f"on {made}.", cls="meta"),
        *(tag("p", n, cls="note") for n in inputs.notes),
        tag("nav", tag("ol", *(tag("li", tag("a", title, href=f"#{anchor}")) for anchor, title, _ in SECTIONS)))])


def render(inputs: ReportInputs) -> str:
    body = [_header(inputs)]
    for _, title, builder in console.progress(SECTIONS, desc="report"):
        body.append(builder(inputs))
    body.append(tag("footer", tag("p", RESEARCH_NOTICE, cls="notice")))
    return document(f"vcpred report: {inputs.chosen}", STYLE, body)


def build_report(eval_dir: str | Path, out: str | Path, *, model_dir: str | Path | list | tuple | None = None,
                 runs: str | None = None, manifest: str | None = None, gallery_per_cell: int = 2) -> Path:
    """Read EVAL (and its runs, manifest, store, and the model directories when given: one, or a
    list whose first is the chosen model and the others add gallery blocks) and write the HTML to out."""
    inputs = load_inputs(eval_dir, model_dir=model_dir, runs=runs, manifest=manifest)
    inputs.gallery_per_cell = gallery_per_cell
    html = render(inputs)
    out = Path(out)
    # A uniquely named temporary sibling, renamed onto out when complete and removed on any failure
    # (Ctrl-C included): never a half-written report, never another file overwritten on the way.
    atomic_write(out, lambda temporary: write_html(temporary, html))
    return out


def write_html(path: Path, html: str) -> None:
    path.write_text(html, encoding="utf-8")
    umask = os.umask(0o022)  # the temporary file is private (0600); the report gets the usual mode
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
