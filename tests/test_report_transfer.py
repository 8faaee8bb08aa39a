"""The transfer check in the report and the model card: a chosen model that collapses at the external set is
said first and plainly (performance notice, the choice, TRIPOD 23a, MODEL_CARD.md), flagged variants are
marked in the ensemble table, and an evaluation without flags or without the check says so."""

from __future__ import annotations

import json
import shutil
from html import unescape

import pytest

from vcpred.bundle.card import _performance
from vcpred.bundle.files import checked_meta, parse_meta
from vcpred.evaluate.outputs import record_outputs
from vcpred.evaluate.transfer import read_transfer, transfer_check
from vcpred.jsonio import to_dict
from vcpred.report.inputs import load_inputs
from vcpred.report.performance import ensemble_table, transfer_notice
from vcpred.report.selection import selection_block
from vcpred.report.tripod import answers

CHOSEN, OTHER, REFERENCE = "vitlora + AP", "vitlora", "clinical"
# the seed-3 numbers: the chosen image model 0.831 inside, 0.609 at the external site; clinical 0.811 there
INTERNAL = {CHOSEN: 0.831, OTHER: 0.79, REFERENCE: 0.80}
EXTERNAL = {CHOSEN: {"auc": 0.609, "auc_ci_low": 0.52, "auc_ci_high": 0.698},
            OTHER: {"auc": 0.78, "auc_ci_low": 0.70, "auc_ci_high": 0.86},
            REFERENCE: {"auc": 0.811, "auc_ci_low": 0.741, "auc_ci_high": 0.881}}
SAID = "The chosen model's external AUC is 0.609 (DeLong 95 % CI 0.520-0.698), its internal 0.831"


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def _inputs(report_artefacts, chosen: str = CHOSEN):
    inputs = load_inputs(report_artefacts.evaluation(), manifest=str(report_artefacts.image_manifest()))
    inputs.chosen, inputs.gallery_per_cell = chosen, 0  # as with --model of the AP export
    return inputs


def _flagged(inputs) -> None:
    """evaluate's best stays whatever it was: the report's chosen model is the one its sentence is about."""
    inputs.evaluation["transfer"] = to_dict(transfer_check(INTERNAL, EXTERNAL, REFERENCE, inputs.evaluation["best"]))


def test_the_evaluations_own_check_reaches_the_report(report_artefacts):
    inputs = _inputs(report_artefacts)
    transfer = read_transfer(json.loads((report_artefacts.evaluation() / "evaluation.json").read_text())["transfer"])
    assert transfer is not None and set(transfer.variants) == set(inputs.evaluation["ensembles"])
    notice, table = unescape(transfer_notice(inputs)), unescape(ensemble_table(inputs))
    for label in transfer.variants:
        assert (f"{label}: " in notice) == (label in transfer.flagged), label
        assert (f"{label} (flagged" in table or f"{label}</strong> (flagged" in table) == (label in transfer.flagged)
    if not transfer.flagged:
        assert f"No variant collapses at the external set or falls below the reference {REFERENCE} there." in notice


def test_a_flagged_chosen_model_is_said_first_and_marked(report_artefacts):
    inputs = _inputs(report_artefacts)
    _flagged(inputs)
    notice = unescape(transfer_notice(inputs))
    assert '<div id="transfer" class="notice">' in notice
    assert notice.index(SAID) < notice.index(f"{CHOSEN}: collapse at the external set")
    assert "it collapses at the external set (drop 0.222 > 0.10, beyond its CI) and it is below the reference " \
           "clinical there (0.811, CI half-width 0.070)" in notice
    assert "Flagged at the external set (1 of 3 variants):" in notice
    assert f"{OTHER}: " not in notice  # 0.79 -> 0.78 holds; 0.78 is above 0.811 - 0.070
    assert "reporting only: the external set does not change which variant is chosen" in notice
    table = unescape(ensemble_table(inputs))
    assert f"<strong>{CHOSEN}</strong> (flagged: collapse at the external set; below the reference at the " \
           "external set)" in table
    assert f"{OTHER} (flagged" not in table and f"{REFERENCE} (flagged" not in table
    assert SAID in unescape(selection_block(inputs)) and 'href="#transfer"' in selection_block(inputs)
    item = answers(inputs)["23a"][0]
    assert f"Transfer check: {SAID}" in item


def test_an_unflagged_chosen_model_gets_no_sentence(report_artefacts):
    inputs = _inputs(report_artefacts, chosen=OTHER)
    _flagged(inputs)
    notice = unescape(transfer_notice(inputs))
    assert "The chosen model's" not in notice and f"{CHOSEN}: collapse at the external set" in notice
    assert "Transfer check" not in answers(inputs)["23a"][0]
    assert "The chosen model's" not in unescape(selection_block(inputs))


def test_an_evaluation_without_the_check_gets_a_note(report_artefacts):
    inputs = _inputs(report_artefacts)
    inputs.evaluation.pop("transfer")
    assert "records no transfer check (written by an earlier vcpred)" in unescape(transfer_notice(inputs))
    assert "(flagged" not in unescape(ensemble_table(inputs))


def test_the_model_card_says_when_its_model_collapses(report_artefacts, tmp_path):
    copy = shutil.copytree(report_artefacts.evaluation(), tmp_path / "eval")
    path = copy / "evaluation.json"
    evaluation = json.loads(path.read_text())
    evaluation["transfer"] = to_dict(transfer_check(INTERNAL, EXTERNAL, REFERENCE, evaluation["best"]))
    path.write_text(json.dumps(evaluation))
    record_outputs(copy)  # an evaluation as evaluate writes it, with this check
    meta = parse_meta(checked_meta(report_artefacts.model_dir()))
    assert meta.ap and meta.configuration == "vitlora"  # the card is about CHOSEN
    card = "\n".join(_performance(meta, copy, external_patients=10))
    assert "- **Transfer check: This model's external AUC is 0.609 (DeLong 95 % CI 0.520-0.698), its internal " \
           "0.831 (vitlora + AP, mean over splits): it collapses at the external set" in card
    evaluation["transfer"] = to_dict(transfer_check(INTERNAL, {**EXTERNAL, CHOSEN: EXTERNAL[OTHER]}, REFERENCE,
                                                    evaluation["best"]))
    path.write_text(json.dumps(evaluation))
    record_outputs(copy)
    assert "Transfer check" not in "\n".join(_performance(meta, copy, external_patients=10))
