"""Every HTML page vcpred writes is made with the one builder (vcpred.html): a hostile text (patient
id, warning, category, reason) appears escaped and never as markup (issue 16). Fast: the pages are
rendered from hand-made inputs, not from trained models."""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from vcpred.html import Html, document, tag, text, void
from vcpred.imaging.qc import write_qc_sheet
from vcpred.predict.report import report_html

HOSTILE = "<script>alert(1)</script>&\"'"
SRC = Path(__file__).resolve().parents[1] / "src" / "vcpred"


class Elements(HTMLParser):
    """The start tags of a page and every attribute value, as the browser's parser reads them."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.texts: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, name, attrs):
        self.tags.append(name)
        self.attributes += [value or "" for _, value in attrs]

    def handle_data(self, data):
        self.texts.append(data)


def assert_escaped(page: str, hostile: str = HOSTILE, *, attribute: bool = False) -> Elements:
    """No raw hostile markup; the value is there escaped, read back whole as text (or an attribute)."""
    assert hostile not in page and "<script" not in page.lower()
    assert escape(hostile) in page
    elements = Elements(page)
    assert "script" not in elements.tags
    assert any(hostile in t for t in elements.texts)
    if attribute:
        assert any(hostile in a for a in elements.attributes)
    return elements


# ---------- the builder ----------

def test_tag_escapes_text_and_attribute_values():
    page = tag("a", HOSTILE, href=HOSTILE, title='x" onclick="alert(1)', cls=HOSTILE)
    assert page == ('<a href="&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;" '
                    'title="x&quot; onclick=&quot;alert(1)" class="&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;'
                    '&#x27;">&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;</a>')
    parsed = Elements(page)
    assert parsed.tags == ["a"] and parsed.attributes == [HOSTILE, 'x" onclick="alert(1)', HOSTILE]
    assert void("img", src=HOSTILE, alt="a<b") == '<img src="&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;" alt="a&lt;b">'
    assert tag("td", Html("<b>kept</b>"), "<i>") == "<td><b>kept</b>&lt;i&gt;</td>"  # Html nests, text is escaped
    assert text(text(HOSTILE)) == escape(HOSTILE)  # never escaped twice
    # a trailing _ keeps an attribute in its place; the element name is positional only (name= is an attribute)
    assert tag("p", "x", class_="a", id="b") == '<p class="a" id="b">x</p>'
    assert void("meta", name="viewport") == '<meta name="viewport">'


def test_document_escapes_the_title_and_keeps_the_style_as_css():
    page = document(HOSTILE, "a>b{color:red}", [tag("p", "x"), Html(""), tag("p", "y")])
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
    assert f"<title>{escape(HOSTILE)}</title><style>a>b{{color:red}}</style>" in page
    assert page.endswith("<body>\n<p>x</p>\n<p>y</p>\n</body></html>\n")
    with pytest.raises(ValueError):
        document("t", "</style><script>", [])


# ---------- the pages ----------

def prediction(**changes) -> dict:
    """A prediction.json `result` with a hostile patient id, category, warning, clinical value and note."""
    result = {
        "patient_id": HOSTILE, "category": f"high risk {HOSTILE}", "probability": 0.7, "threshold": 0.4,
        "threshold_rule": HOSTILE, "interval": {"low": 0.5, "high": 0.8}, "sd": 0.1, "per_model": [{}, {}],
        "ap": True, "aggregate": "mean", "per_frame": [{"offset": 0, "slice": 4, "probability": 0.7}],
        "clinical": {HOSTILE: HOSTILE, "age": 90.0}, "warnings": [HOSTILE],
        "clinical_flags": [{"name": "age", "training_min": 64.0, "training_max": 83.0}],
        "notice": "research use only, not a medical device", "warning": f"trained on {HOSTILE}",
        "heatmap": {"method": HOSTILE, "note": HOSTILE}, "roi": {"slice": 4, "box": [1, 2, 3, 4]},
        "provenance": {"sequences": {"t2": {"source": HOSTILE}}}, "model_id": HOSTILE, "precision": "fp32"}
    return {**result, **changes}


def test_predict_report_escapes_every_value(tmp_path):
    page = report_html(prediction(), b"\x89PNG")
    elements = assert_escaped(page)
    assert f"<title>vcpred: {escape(HOSTILE)}</title>" in page
    assert f"<h1>Vertebral collapse risk: {escape(HOSTILE)}</h1>" in page
    assert f'<p class="notice synthetic" id="synthetic-warning">Trained on {escape(HOSTILE)}.</p>' in page
    assert f'<p class="risk high">High risk {escape(HOSTILE.lower())}:' in page
    assert f"<h2>Warnings</h2>\n<ul><li>{escape(HOSTILE)}</li></ul>" in page
    assert f"<tr><th>{escape(HOSTILE)}</th><td>{escape(HOSTILE)}</td></tr>" in page  # a clinical value
    assert "90.0 (outside the training range 64 to 83: the model extrapolates)" in page
    assert elements.tags.count("img") == 1 and elements.tags.count("table") == 3
    borderline = report_html(prediction(borderline=True, category=f"low {HOSTILE}"), None)
    assert_escaped(borderline)
    assert ('<p class="risk borderline">Borderline: the split models fall on both sides of the threshold. 70.0 %'
            in borderline) and "No heat map for this model." in borderline


def test_qc_sheet_escapes_patient_ids_warnings_and_errors(tmp_path):
    failed = f"{HOSTILE}-failed"
    index = {"patients": {HOSTILE: {"status": "ok", "warnings": [f"warning {HOSTILE}"]},
                          failed: {"status": "failed", "error": f"error {HOSTILE}"}}}
    page = write_qc_sheet(tmp_path, [HOSTILE, failed], index).read_text(encoding="utf-8")
    elements = assert_escaped(page, attribute=True)
    assert f'<section class="warned"><h2>{escape(HOSTILE)}</h2><ul><li>warning {escape(HOSTILE)}</li></ul>' in page
    assert (f'<section class="failed"><h2>{escape(failed)}</h2><p class="error">error {escape(HOSTILE)}</p>'
            "</section>") in page
    assert f"{HOSTILE}: main slice with ROI, and the frames" in elements.attributes
    [source] = [a for a in elements.attributes if a.startswith("qc/")]
    assert re.fullmatch(r"qc/[A-Za-z0-9%_.~-]+\.png", source)  # the file name is percent-encoded
    assert "<title>vcpred prepare: QC</title>" in page and "2 patient(s): 1 with warnings, 1 not prepared" in page


def validation_record() -> dict:
    """A metrics.json `record` of `vcpred validate` with hostile names, one excluded patient and no figures."""
    origin = {"synthetic": True, "evidence": HOSTILE}
    return {
        "model": {"model_id": HOSTILE, "path": HOSTILE, "configuration": HOSTILE, "ap": False, "kind": "clinical",
                  "aggregate": "mean", "threshold": 0.4, "threshold_rule": HOSTILE, "training_data": origin},
        "cohort": {"manifest": HOSTILE, "set": "external", "patients": 5, "training_data": origin},
        "n": 4, "events": 1, "controls": 3, "threshold": 0.4, "date": "2026-01-01",
        "excluded": [{"patient_id": HOSTILE, "set": "external", "reason": f"unreadable {HOSTILE}"}],
        "not_computed": {"auc": f"needs 2 cases {HOSTILE}"}, "split_models": [], "recalibration": None,
        "risk": {"low": 3, "borderline": 1}, "imputed": {"patients": 1, "of": 4, "columns": {HOSTILE: 1}}}


def test_validate_page_escapes_model_cohort_and_excluded_patients():
    from vcpred.validate.page import page_html

    page = page_html(validation_record(), {})
    assert_escaped(page)
    assert f"<title>vcpred validate: {escape(HOSTILE)}</title>" in page
    assert f"<h1>External validation of {escape(HOSTILE)}</h1>" in page
    assert f"<td>{escape(HOSTILE)}</td><td>external</td><td>unreadable {escape(HOSTILE)}</td>" in page
    assert f"ROC curve: not drawn (needs 2 cases {escape(HOSTILE)})." in page
    assert f"1 of 4 scored patients ({escape(HOSTILE)} 1)" in page


def test_report_parts_escape_card_and_flow_text():
    from vcpred.report.flow import flow_svg
    from vcpred.report.markdown import markdown_html

    card = markdown_html(f"# {HOSTILE}\n\n**bold** {HOSTILE}\n- {HOSTILE}\n\n| a | b |\n|---|---|\n| {HOSTILE} | `c` |")
    assert isinstance(card, Html)
    assert_escaped(card)
    assert card.startswith(f"<h3>{escape(HOSTILE)}</h3>\n<p><strong>bold</strong> {escape(HOSTILE)}</p>")
    assert f"<tbody><tr><td>{escape(HOSTILE)}</td><td><code>c</code></td></tr></tbody>" in card
    flow = flow_svg(*([[HOSTILE, "second line"]] * 8))
    elements = assert_escaped(flow)
    assert elements.tags[0] == "svg" and elements.tags.count("tspan") == 16 and 'class="flow"' in flow


def test_no_module_writes_markup_outside_the_builder():
    """Markup literals ('<p', '<tr', '<!doctype', ...) only in vcpred/html.py; the markdown renderer's
    inline patterns and annotate's edit of the static page are the known exceptions."""
    markup = re.compile(r"""["'](<(?:!doctype|/?(?:html|head|body|p|div|span|table|tr|td|th|ul|li|h[1-6]|section"""
                        r"""|img|svg|rect|tspan|a|title|style|meta))[\s>/])""", re.IGNORECASE)
    allowed = {"html.py", "report/markdown.py", "serve/annotate_app.py"}
    found = {str(path.relative_to(SRC)): markup.findall(path.read_text(encoding="utf-8"))
             for path in SRC.rglob("*.py")}
    assert {name: hits for name, hits in found.items() if hits and name not in allowed} == {}
