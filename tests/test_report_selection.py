"""The report's selection block and per-development-site validation table (evaluation.json `selection`
and `sites`): the session's small evaluation, and constructed records for the cells."""

from __future__ import annotations

import json
import shutil
from html import unescape

import pytest

from vcpred.evaluate.outputs import record_outputs
from vcpred.evaluate.selection import MARGIN, NestedEstimate, Selection, read_selection
from vcpred.evaluate.sites import SiteAUC, VariantSites
from vcpred.evaluate.summary import rule_sentence
from vcpred.jsonio import to_dict
from vcpred.report.inputs import ReportError, load_inputs
from vcpred.report.selection import development_sites_block, selection_block
from vcpred.report.tables import tables_section


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def _inputs(report_artefacts):
    inputs = load_inputs(report_artefacts.evaluation(), manifest=str(report_artefacts.image_manifest()))
    inputs.gallery_per_cell = 0
    return inputs


def _comparison(html: str) -> str:
    return unescape(html[html.index('id="comparison"'):html.index('id="performance"')])


def test_the_report_shows_the_rule_its_reference_and_the_out_of_split_aucs(report_artefacts):
    html = report_artefacts.report_file().read_text()
    section = _comparison(html)
    evaluation = json.loads((report_artefacts.evaluation() / "evaluation.json").read_text())
    selection = read_selection(evaluation["selection"])
    assert selection.rule == MARGIN and selection.reference == "clinical"  # the configuration without images
    assert "<h3>Choosing the best variant</h3>" in section and rule_sentence(selection) in section
    assert "nested estimate" in section
    assert "Validation AUC per development site (out-of-split)" in section
    for label, found in evaluation["sites"].items():
        pooled = found["pooled"]
        assert f"{pooled['auc']:.3f} ({pooled['auc_ci_low']:.3f}-{pooled['auc_ci_high']:.3f})" in section, label
    assert "Development sites unknown: evaluate with --manifest" in section  # evaluated without one
    assert f"the best variant: {evaluation['best']} ({evaluation['comparisons']['best_rule']}, i.e. on " \
           "validation patients)" in section


def _site(auc: float, n: int = 40, cases: int = 15) -> SiteAUC:
    return SiteAUC(n, cases, auc, auc - 0.15, auc + 0.15)


def test_constructed_selection_and_sites_fill_the_cells(report_artefacts):
    inputs = _inputs(report_artefacts)
    labels = list(inputs.evaluation["ensembles"])
    reference, challenger = "clinical", labels[0] if labels[0] != "clinical" else labels[1]
    selection = Selection(MARGIN, "worst-site out-of-split AUC", "3 development sites have at least 2 cases and 2 "
                          "controls (A, B, C)", "a bootstrap", {reference: 0.700, challenger: 0.761},
                          {challenger: 0.0265}, reference, challenger, 0.061, 0.061 / 0.0265,
                          f"{challenger} beats {reference} by 0.061 = 2.3 SE (worst-site out-of-split AUC)",
                          NestedEstimate(0.851, 0.825, 0.026, {0: challenger, 1: reference}, "nested"))
    sites = {reference: VariantSites(_site(0.75, 120, 45), {"A": _site(0.71), "B": _site(0.80), "C": _site(0.74)},
                                     "A", 0.71),
             challenger: VariantSites(_site(0.77, 120, 45), {"A": _site(0.65), "B": _site(0.73), "C": _site(0.56)},
                                      "C", 0.56)}
    inputs.evaluation["selection"] = to_dict(selection)
    inputs.evaluation["sites"] = {label: to_dict(found) for label, found in sites.items()}
    block = unescape(selection_block(inputs))
    assert f"Keep the reference {reference}" in block or f"keep the reference {reference}" in block
    assert f"{challenger} beats {reference} by 0.061 = 2.3 SE" in block
    assert "0.851" in block and "0.825 (nested estimate): the selected figure is optimistic by 0.026" in block
    assert f"<strong>{challenger}</strong>" in block and "+0.061" in block and "<td>2.3</td>" in block
    table = unescape(development_sites_block(inputs))
    assert "site A (40, 15)" in table and "pooled (120 patients, 45 events)" in table
    assert "0.560 (0.410-0.710)" in table and "C: 0.560" in table and "A: 0.710" in table
    assert "Development sites unknown" not in table


def test_an_evaluation_without_them_gets_notes_not_errors(report_artefacts):
    inputs = _inputs(report_artefacts)
    for key in ("selection", "sites"):
        inputs.evaluation.pop(key)
    section = unescape(tables_section(inputs))
    assert "records no selection rule (written by an earlier vcpred" in section
    assert "No per-site validation AUCs: this evaluation was written by an earlier vcpred" in section


def test_a_selection_that_does_not_fit_is_refused_by_name(report_artefacts, tmp_path):
    copy = shutil.copytree(report_artefacts.evaluation(), tmp_path / "eval")
    path = copy / "evaluation.json"
    evaluation = json.loads(path.read_text())
    evaluation["selection"]["scores"] = ["not", "a", "mapping"]
    path.write_text(json.dumps(evaluation))
    record_outputs(copy)  # its hashes fit: what is checked is its content
    with pytest.raises(ReportError, match=r"selection\.scores: expected an object"):
        load_inputs(copy, runs=str(report_artefacts.runs_folder()), manifest=str(report_artefacts.image_manifest()))
