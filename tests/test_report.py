"""`vcpred report`: every section filled from the evaluation's own numbers, self-contained HTML,
heat maps made by predict's code, the model card, and clear errors for bad inputs."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
from html import escape, unescape

import pandas as pd
import pytest

from report_support import ReportArtefacts
from vcpred import RESEARCH_NOTICE
from vcpred.cli import main
from vcpred.cohort import load_manifest
from vcpred.cohort.provenance import warning_sentence
from vcpred.evaluate.tables import mean_sd
from vcpred.bundle import export_configuration
from vcpred.predict import load_bundle, predict_patient
from vcpred.predict.outputs import heatmap_png
from vcpred.bundle.method import clinical_step
from vcpred.report.build import SECTIONS, render
from vcpred.report.figures import _title as roc_title
from vcpred.report.gallery import CONTEXT
from vcpred.report.inputs import load_inputs
from vcpred.report.setup import configurations_table, setup_section
from vcpred.report.tripod import ITEMS, answers


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))  # no pre-trained weights anywhere


@pytest.fixture(scope="module")
def html(report_artefacts) -> str:
    return report_artefacts.report_file().read_text()


def _resealed(folder):
    """Record the sha256 of an edited evaluation's files again, as evaluate does: for what the report
    checks once the hashes fit (content evaluate would not write, runs moved since)."""
    from vcpred.evaluate.outputs import record_outputs

    record_outputs(folder)
    return folder


def _summary(report_artefacts: ReportArtefacts) -> pd.DataFrame:
    return pd.read_csv(report_artefacts.evaluation() / "summary.csv")


def _fails(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_every_section_and_the_notice_are_there(html):
    for anchor, title, _ in SECTIONS:
        assert f"<section id=\"{anchor}\"><h2>{escape(title)}</h2>" in html
    assert html.count(RESEARCH_NOTICE) >= 3  # banner, footer, model card (and every figure)
    assert 'class="notice"' in html


def test_the_page_is_self_contained(html):
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert len(sources) >= 3 + 4  # ROC, calibration, decision curve + one heat map per outcome
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for source in sources:
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', html, flags=re.IGNORECASE)
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(http" not in html


def test_comparison_cells_are_the_evaluation_numbers(report_artefacts, html):
    summary = _summary(report_artefacts)
    section = html[html.index('id="comparison"'):html.index('id="performance"')]
    for _, row in summary.iterrows():
        assert mean_sd(row["auc_mean"], row["auc_sd"]) in section
        assert mean_sd(row["sensitivity_mean"], row["sensitivity_sd"]) in section
        if row["set"] == "external":
            ci = f"{row['ensemble_auc']:.4f} ({row['ensemble_auc_ci_low']:.4f}-{row['ensemble_auc_ci_high']:.4f})"
            assert ci in section
    m = json.loads((report_artefacts.evaluation() / "evaluation.json").read_text())["comparisons"]["n_comparisons"]
    assert f"Holm correction over {m} comparisons" in section and "Nadeau-Bengio" in section
    others = summary[(summary["best"].astype(str).str.lower() != "true") & summary["p_value"].notna()]
    for _, row in others.iterrows():  # a star exactly where the Holm-adjusted p is below 0.05
        text = "&lt; 0.001" if row["p_value"] < 0.001 else f"{row['p_value']:.3f}"
        small = " (small sample)" if str(row["small_sample"]).lower() == "true" else ""  # evaluate's rule, per set
        assert (text + ("*" if row["p_holm"] < 0.05 else "") + small + "<") in section
    # Table 2: backbone x weights x method from each configuration's config.yaml
    assert "vit_tiny_test / random" in section and "lora" in section and "logistic regression" in section


def test_cohort_counts_and_flow_match_the_manifest(report_artefacts, html):
    cohort = load_manifest(report_artefacts.image_manifest(), check_files=False)
    section = html[html.index('id="cohort"'):html.index('id="preprocessing"')]
    for set_name in ("development", "external"):
        records = cohort.subset(set_name)
        events = sum(r.label for r in records)
        assert (f"<td>{set_name}</td><td>all</td><td>{len(records)}</td><td>{len(records)}</td><td>{events}</td>"
                f"<td>{events / len(records):.1%}</td>") in section
    assert "<td>age</td><td>numeric</td><td>1 (4%)</td>" in section  # the tiny cohort's one missing age
    assert "<svg" in section and "3 patient-level splits (seed 0)" in section
    assert "4 finished split runs" in section  # 2 configurations x 2 splits


def test_preprocessing_record_comes_from_the_store_and_the_model(html):
    section = html[html.index('id="preprocessing"'):html.index('id="comparison"')]
    assert "64 x 64 px" in section and "zscore" in section and "5 frames" in section
    assert "index.json" in section and "bundle.json" in section


def _blocks(html: str) -> list[str]:
    section = html[html.index('id="gallery"'):html.index('id="failures"')]
    return section.split('<div class="block">')[1:]


def _first_map(block: str) -> tuple[bytes, str]:
    match = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="heat map of ([^"]+)"', block)
    return base64.b64decode(match.group(1)), match.group(2)


def test_gallery_maps_are_predicts_own_heat_maps(report_artefacts, html):
    """Each block's first image is byte for byte what `vcpred predict`'s code draws for that patient
    with that block's model, zoomed on the vertebra; predict's own heat map is the one drawn."""
    blocks = _blocks(html)
    assert len(blocks) == 2
    assert "vitlora + AP - attention rollout (chosen model)" in blocks[0]
    assert "vitlora - attention rollout (for comparison)" in blocks[1]
    cohort = load_manifest(report_artefacts.image_manifest(), check_files=False)
    for block, directory in zip(blocks, (report_artefacts.model_dir(), report_artefacts.second_model_dir())):
        for outcome in ("true positives", "false positives", "false negatives", "true negatives"):
            assert outcome in block
        png, patient = _first_map(block)
        prediction = predict_patient(load_bundle(directory), cohort[patient], allow_missing=True, strict_keys=False)
        assert png == heatmap_png(prediction, None, context=CONTEXT)
        assert png != heatmap_png(prediction, None)  # zoomed, not the full slice
        assert f"P(collapse) {prediction.result['probability']:.3f}" in block
        assert f"development threshold {prediction.result['threshold']:.3f}" in block
    assert "attention rollout" in html[html.index('id="gallery"'):html.index('id="failures"')]


def test_each_gallery_block_picks_its_own_models_cases(report_artefacts, html):
    """Cases come from each variant's own ensemble at its own threshold: the first case shown per
    outcome is that ensemble's clearest one."""
    table = pd.read_csv(report_artefacts.evaluation() / "ensemble_predictions.csv", dtype={"patient_id": str})
    for block, variant in zip(_blocks(html), ("vitlora + AP", "vitlora")):
        mine = table[(table["variant"] == variant) & table["label"].notna()]
        predicted = mine["probability"] >= mine["threshold"]
        cells = block.split('<div class="cell">')[1:]
        for cell, (label, positive, ascending) in zip(cells, ((1, True, False), (0, True, False),
                                                               (1, False, True), (0, False, True))):
            chosen = mine[(mine["label"] == label) & (predicted == positive)]
            if chosen.empty:
                assert "none" in cell
                continue
            best = chosen.sort_values(["probability", "patient_id"], ascending=[ascending, True]).iloc[0]
            assert f"alt=\"heat map of {best['patient_id']}\"" in cell
            assert f"evaluation ensemble {best['probability']:.3f}" in cell


def test_extra_models_must_be_other_variants_of_this_evaluation(report_artefacts, tmp_path, capsys):
    err = _fails(capsys, report_artefacts.report_args(tmp_path / "r.html", "--model", str(report_artefacts.model_dir())))
    assert "both export 'vitlora + AP'" in err
    median = export_configuration(report_artefacts.runs_folder(), "vitlora", tmp_path / "median", rule="median")
    err = _fails(capsys, report_artefacts.report_args(tmp_path / "r.html", "--model", str(median)))
    assert "differs from the evaluation's 'vitlora + AP' ensemble threshold" in err
    assert not (tmp_path / "r.html").exists()
    # a clinical-only extra model gets a block that says there is nothing to explain
    clinical = tmp_path / "clinical-model"
    assert main(["--quiet", "export", str(report_artefacts.runs_folder()), "--configuration", "clinical", "--eval", str(report_artefacts.evaluation()),
                 "--out", str(clinical)]) == 0
    assert main(report_artefacts.report_args(tmp_path / "r.html", "--model", str(clinical), "--gallery", "1")) == 0
    blocks = _blocks((tmp_path / "r.html").read_text())
    assert len(blocks) == 2 and "uses clinical values only" in blocks[1] and "heat map of" not in blocks[1]


def test_failures_list_the_most_confident_errors_with_clinical_values(report_artefacts, html):
    table = pd.read_csv(report_artefacts.evaluation() / "ensemble_predictions.csv")
    mine = table[(table["variant"] == "vitlora + AP") & table["label"].notna()]
    wrong = mine[(mine["probability"] >= mine["threshold"]).astype(int) != mine["label"]]
    worst = wrong.loc[(wrong["label"] - wrong["probability"]).abs().idxmax()]
    section = html[html.index('id="failures"'):html.index('id="card"')]
    assert f"{len(wrong)} of {len(mine)} labelled external patients are misclassified" in section
    record = load_manifest(report_artefacts.image_manifest(), check_files=False)[worst["patient_id"]]
    first_row = section[section.index("<tbody>"):section.index("</tr>", section.index("<tbody>"))]
    assert f"<td>{worst['patient_id']}</td>" in first_row and f"<td>{worst['probability']:.3f}</td>" in first_row
    assert f"<td>{record.clinical['sex']}</td>" in first_row


def test_model_card_has_ensemble_ci_and_calibration(report_artefacts, html):
    card = (report_artefacts.model_dir() / "MODEL_CARD.md").read_text()
    row = _summary(report_artefacts).query("variant == 'vitlora + AP' and set == 'external'").iloc[0]
    ensemble = json.loads((report_artefacts.evaluation() / "evaluation.json").read_text())["ensembles"]["vitlora + AP"]
    ci = f"{row['ensemble_auc']:.3f} (95 % CI {row['ensemble_auc_ci_low']:.3f}-{row['ensemble_auc_ci_high']:.3f}, DeLong)"
    assert ci in card and f"slope {ensemble['calibration_slope']:.2f}" in card
    assert f"**{RESEARCH_NOTICE}**" in card and "## Intended use" in card and "## Known limits" in card
    section = html[html.index('id="card"'):html.index('id="tripod"')]
    assert escape(ci) in section and "<h4>Training population</h4>" in section and "<table" in section


def test_tripod_checklist_is_filled_from_the_run_with_placeholders(report_artefacts, html):
    section = html[html.index('id="tripod"'):]
    numbers = re.findall(r"<tr><td>(\w+)</td>", section)
    assert numbers == [item.number for item in ITEMS]
    assert {"Open science", "Patient and public involvement", "Discussion"} <= set(re.findall(r'colspan="5">([^<]+)<', section))
    assert section.count('class="placeholder"') >= 10 and "[authors: funding]" in section
    m = json.loads((report_artefacts.evaluation() / "evaluation.json").read_text())["comparisons"]["n_comparisons"]
    assert f"Holm over {m} comparisons" in section and "3 random patient-level splits" in section


def test_without_a_model_the_gallery_says_how_to_get_one(report_artefacts, tmp_path):
    out = tmp_path / "r.html"
    assert main(["--quiet", "report", str(report_artefacts.evaluation()), "--out", str(out)]) == 0
    html = out.read_text()
    assert "vcpred export RUNS --configuration NAME --eval EVAL --out MODEL_DIR" in html
    assert "heat map of" not in html and 'id="failures"' in html


def test_bad_eval_folders_are_refused(report_artefacts, tmp_path, capsys):
    out = str(tmp_path / "r.html")
    assert "does not exist" in _fails(capsys, ["report", str(tmp_path / "nope"), "--out", out])
    (tmp_path / "empty").mkdir()
    assert "not a `vcpred evaluate` output" in _fails(capsys, ["report", str(tmp_path / "empty"), "--out", out])
    copy = shutil.copytree(report_artefacts.evaluation(), tmp_path / "eval")
    (copy / "evaluation.json").write_text(json.dumps({"generator": "someone else"}))
    assert "not written by `vcpred evaluate`" in _fails(capsys, ["report", str(copy), "--out", out])
    payload = json.loads((report_artefacts.evaluation() / "evaluation.json").read_text())
    del payload["comparisons"]["comparisons"][0]["external"]["primary"]["p_holm"]
    (copy / "evaluation.json").write_text(json.dumps(payload))
    assert "evaluation.json changed since `vcpred evaluate` wrote it" in _fails(capsys, ["report", str(copy), "--out", out])
    err = _fails(capsys, ["report", str(_resealed(copy)), "--out", out])  # its hashes fit, its content does not
    assert "does not hold what `vcpred evaluate` writes (comparisons.comparisons[0].external.primary: no 'p_holm')" in err
    assert not (tmp_path / "r.html").exists()


def _edit_a_number(path) -> None:
    """A hand edit: summary.csv's first ensemble AUC becomes 0.9999 (the issue's 0.917 -> 0.9999, shown as
    1.000), any other file's first number gains a digit."""
    if path.name == "summary.csv":
        table = pd.read_csv(path, keep_default_na=False, dtype=str)
        table.loc[table["set"] == "external", "ensemble_auc"] = "0.9999"
        table.to_csv(path, index=False)
    else:
        path.write_text(path.read_text().replace("0.", "0.9", 1))


@pytest.mark.parametrize("name", ["summary.csv", "per_split.csv", "ensemble_predictions.csv", "evaluation.json"])
def test_an_evaluation_edited_after_evaluate_is_refused_naming_the_file(report_artefacts, tmp_path, capsys, name):
    """evaluate records the sha256 of what it writes (sha256.json) and the report checks every file it
    reads against it (issue 27: an edited summary.csv was reported as it was)."""
    copy = shutil.copytree(report_artefacts.evaluation(), tmp_path / "eval")
    load_inputs(copy, manifest=str(report_artefacts.image_manifest()))  # a copy, untouched: read as it is
    _edit_a_number(copy / name)
    out = tmp_path / "r.html"
    err = _fails(capsys, ["report", str(copy), "--out", str(out), "--gallery", "0"])
    assert f"{copy / name} changed since `vcpred evaluate` wrote it" in err
    assert f"vcpred evaluate {report_artefacts.runs_folder()} --out {copy}" in err and not out.exists()


def test_an_evaluation_without_its_sha256_record_is_refused(report_artefacts, tmp_path, capsys):
    copy = shutil.copytree(report_artefacts.evaluation(), tmp_path / "eval")
    (copy / "sha256.json").unlink()
    err = _fails(capsys, ["report", str(copy), "--out", str(tmp_path / "r.html"), "--gallery", "0"])
    assert f"{copy / 'sha256.json'} is missing" in err and "vcpred evaluate" in err


def test_the_report_reads_evaluation_json_into_evaluates_records(report_artefacts):
    """comparisons, calibration and decision curves are evaluate's typed records, written again unchanged."""
    from vcpred.evaluate.calibration import VariantCalibration, calibration_json
    from vcpred.evaluate.compare import Comparisons
    from vcpred.evaluate.decision import DecisionCurves, decision_json
    from vcpred.jsonio import to_dict

    inputs = load_inputs(report_artefacts.evaluation(), manifest=str(report_artefacts.image_manifest()))
    assert isinstance(inputs.comparisons, Comparisons) and isinstance(inputs.decision_curves, DecisionCurves)
    assert all(isinstance(c, VariantCalibration) for c in inputs.calibration.values())
    assert to_dict(inputs.comparisons) == inputs.evaluation["comparisons"]
    assert calibration_json(inputs.calibration) == inputs.evaluation["calibration"]
    assert decision_json(inputs.decision_curves) == inputs.evaluation["decision_curves"]


def test_an_existing_report_is_kept_unless_force(report_artefacts, tmp_path, capsys):
    out = tmp_path / "r.html"
    out.write_text("mine")
    assert "exists" in _fails(capsys, ["report", str(report_artefacts.evaluation()), "--out", str(out)])
    assert out.read_text() == "mine"
    assert main(["--quiet", "report", str(report_artefacts.evaluation()), "--out", str(out), "--force", "--gallery", "0"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_the_report_is_written_beside_and_renamed_in_one_step(report_artefacts, tmp_path, monkeypatch):
    """No fixed temporary name (a user's r.html.partial was overwritten, then renamed away), nothing
    left behind, and an interruption keeps the earlier report."""
    out = tmp_path / "r.html"
    (tmp_path / "r.html.partial").write_text("the user's draft")
    assert main(["--quiet", "report", str(report_artefacts.evaluation()), "--out", str(out), "--gallery", "0"]) == 0
    assert (tmp_path / "r.html.partial").read_text() == "the user's draft"
    assert {p.name for p in tmp_path.iterdir()} - {"home"} == {"r.html", "r.html.partial"}
    before = out.read_bytes()

    def interrupted(path):
        path.write_text("<!DOCTYPE html> half")
        raise KeyboardInterrupt

    import vcpred.report.build as build
    monkeypatch.setattr(build, "write_html", lambda path, html: interrupted(path))
    assert main(["--quiet", "report", str(report_artefacts.evaluation()), "--out", str(out), "--gallery", "0", "--force"]) == 130
    assert out.read_bytes() == before
    assert {p.name for p in tmp_path.iterdir()} - {"home"} == {"r.html", "r.html.partial"}


def test_a_model_from_other_runs_is_refused(report_artefacts, tmp_path, capsys):
    # a configuration this evaluation never saw
    only_clinical = shutil.copytree(report_artefacts.runs_folder() / "clinical", tmp_path / "runs" / "clinical")
    assert main(["--quiet", "evaluate", str(only_clinical.parent), "--out", str(tmp_path / "eval")]) == 0
    model = report_artefacts.model_dir()  # built on first use: its evaluation may warn (a small sample)
    capsys.readouterr()  # evaluate's own warnings are not the report's
    err = _fails(capsys, ["report", str(tmp_path / "eval"), "--out", str(tmp_path / "r.html"), "--model", str(model)])
    assert "exports 'vitlora + AP', which this evaluation does not contain" in err
    # the same configuration exported with another AP rule: its threshold is not the evaluation's
    median = export_configuration(report_artefacts.runs_folder(), "vitlora", tmp_path / "median", rule="median")
    err = _fails(capsys, ["report", str(report_artefacts.evaluation()), "--out", str(tmp_path / "r.html"), "--model", str(median)])
    assert "differs from the evaluation's 'vitlora + AP' ensemble threshold" in err
    assert "not a `vcpred export` model directory" in _fails(
        capsys, ["report", str(report_artefacts.evaluation()), "--out", str(tmp_path / "r.html"), "--model", str(tmp_path)])


def test_runs_and_manifest_that_cannot_be_found_are_named(report_artefacts, tmp_path, capsys):
    copy = shutil.copytree(report_artefacts.evaluation(), tmp_path / "eval")
    payload = json.loads((copy / "evaluation.json").read_text())
    (copy / "evaluation.json").write_text(json.dumps({**payload, "runs": str(tmp_path / "moved")}))
    _resealed(copy)  # as evaluate would have written it for runs since moved
    assert "pass --runs RUNS" in _fails(capsys, ["report", str(copy), "--out", str(tmp_path / "r.html")])
    assert "--manifest" in _fails(capsys, ["report", str(copy), "--out", str(tmp_path / "r.html"),
                                           "--runs", str(report_artefacts.runs_folder()), "--manifest", str(tmp_path / "no.csv")])


def test_runs_given_explicitly_with_no_gallery(report_artefacts, tmp_path):
    """--runs overrides the recorded runs folder; --gallery 0 leaves the heat maps out."""
    out = tmp_path / "r.html"
    assert main(report_artefacts.report_args(out, "--runs", str(report_artefacts.runs_folder()), "--gallery", "0")) == 0
    html = out.read_text()
    assert all(f'<section id="{anchor}">' in html for anchor, _, _ in SECTIONS) and "heat map of" not in html


def _tripod(html: str) -> dict[str, str]:
    """item number -> the report's answer, as text."""
    section = html[html.index('id="tripod"'):]
    cells = re.findall(r"<tr><td>(\w+)</td><td>[^<]*</td><td>[^<]*</td><td>(.*?)</td><td>", section)
    return {number: unescape(re.sub(r"<[^>]+>", "", answer)) for number, answer in cells}


def _inputs(report_artefacts: ReportArtefacts):
    inputs = load_inputs(report_artefacts.evaluation(), manifest=str(report_artefacts.image_manifest()))
    inputs.gallery_per_cell = 0
    return inputs


def test_a_report_of_runs_on_synthetic_data_says_so_at_the_top(report_artefacts):
    html = report_artefacts.synthetic_report().read_text()
    banner = html[html.index('id="synthetic"'):html.index("</p>", html.index('id="synthetic"'))]
    assert 'class="notice synthetic"' in html and warning_sentence() in banner and "synth.json" in banner
    assert html.index('id="synthetic"') < html.index("<h1>")
    answers = _tripod(html)
    assert answers["3b"].startswith("No target population is represented: the data are a synthetic cohort")
    assert answers["9c"] == ("ROI boxes and slices come from the generator (the known lesion position), not from a "
                             "reader.")
    assert answers["8a"].startswith("Binary label drawn by the generator")
    card = html[html.index('id="card"'):html.index('id="tripod"')]
    assert f"<strong>{escape(warning_sentence())}</strong>" in card


def test_a_report_of_real_runs_has_no_synthetic_warning(html):
    assert 'id="synthetic"' not in html and warning_sentence() not in html
    answers = _tripod(html)
    assert answers["9c"].startswith("ROI box and slice given in the manifest, placed by a reader.")
    assert answers["3b"].startswith("Intended: adults with an acute osteoporotic vertebral compression fracture")


def test_tripod_answers_are_filled_from_the_runs_and_the_evaluation(html):
    answers = _tripod(html)
    assert answers["13"] == ("Image models: unweighted binary cross-entropy; output bias initialised at the training "
                             "prevalence; no resampling; no recalibration; Clinical-only logistic regression: "
                             "unweighted logistic regression (L2 penalty, log-loss); no resampling; no recalibration "
                             "(from each run's metrics.json).")
    assert "Validation patients chose early stopping" in answers["12a"] and "Youden" in answers["12a"]
    assert answers["12a"].endswith("The external set chose nothing: it was used only to measure performance.")
    assert "No automatic hyperparameter tuning: only the 2 configuration(s) given were compared" in answers["12c"]
    assert answers["12d"] == answers["23b"] == (
        "Development sites: not examined (evaluated without --manifest, or fewer than 2 sites). "
        "External set: not examined (evaluated without --manifest, so no subgroup metrics).")
    assert answers["12f"].startswith("No updating and no recalibration") and answers["24"] == answers["12f"]
    assert "CIs only for AUC" in answers["23a"] and "CIs for all" not in answers["23a"]
    assert "development sites A; external sites B" in answers["6a"]


def test_tripod_heterogeneity_quotes_development_and_external_sites(report_artefacts):
    inputs = _inputs(report_artefacts)
    metrics = {"n": 5, "n_cases": 2, "auc": 0.7}
    inputs.evaluation["subgroups"] = {inputs.chosen: {"site": {"B": metrics}}}
    one = {number: answer for number, (answer, _) in answers(inputs).items()}
    assert one["12d"] == one["23b"]
    assert one["12d"].endswith("External set: one site (B), so no heterogeneity to examine there.")
    inputs.evaluation["subgroups"] = {inputs.chosen: {"site": {"B": metrics, "C": metrics}, "sex": {"F": metrics}}}
    two = {number: answer for number, (answer, _) in answers(inputs).items()}
    assert two["12d"].endswith("External set: per-site metrics of the chosen ensemble (B, C) in the subgroup table.")
    assert two["14"].startswith("Subgroup metrics (site, sex) of the chosen ensemble reported")
    # the development sites' out-of-split validation AUCs of the chosen variant (evaluation.json `sites`)
    site = {"n": 20, "n_cases": 8, "auc_ci_low": 0.5, "auc_ci_high": 0.9}
    inputs.evaluation["sites"] = {inputs.chosen: {
        "pooled": {**site, "n": 40, "auc": 0.75}, "sites": {"A": {**site, "auc": 0.8123}, "C": {**site, "auc": 0.6}},
        "worst_site": "C", "worst_site_auc": 0.6}}
    sites = {number: answer for number, (answer, _) in answers(inputs).items()}
    assert sites["12d"].startswith("Development sites: out-of-split validation AUC of the chosen variant per site "
                                   "(A 0.812, C 0.600; worst C)")


def test_tripod_13_and_12f_name_an_exported_model_recalibrated_after_training(report_artefacts):
    import dataclasses

    inputs = load_inputs(report_artefacts.evaluation(), model_dir=str(report_artefacts.model_dir()),
                         manifest=str(report_artefacts.image_manifest()))
    assert inputs.models and not any(meta.recalibration for _, meta in inputs.models)
    before = answers(inputs)["13"][0]
    inputs.bundle = dataclasses.replace(inputs.bundle, recalibration={"intercept": 0.1, "slope": 0.9})
    after = answers(inputs)
    ids = ", ".join(meta.model_id for _, meta in inputs.models)
    assert after["13"][0] == before + f" The exported model {ids} was recalibrated afterwards (item 12f)."
    assert after["12f"][0] == f"Recalibration recorded by {ids}; see their model cards."


def test_tripod_13_says_when_the_runs_recorded_no_loss(report_artefacts):
    inputs = _inputs(report_artefacts)
    inputs.losses = {name: [None, None] for name in inputs.configs}
    answer, _ = answers(inputs)["13"]
    assert "not recorded in the runs' metrics.json" in answer and "unweighted" not in answer


def test_the_comparison_says_what_validation_data_chose(html):
    section = html[html.index('id="comparison"'):html.index('id="performance"')]
    block = unescape(section[section.index("<h3>What validation data was used for</h3>"):])
    assert "early stopping: each image run keeps its epoch with the highest validation AUC" in block
    assert ("the best variant: clinical (the reference clinical unless a challenger's mean internal AUC is higher by "
            "more than one standard error, i.e. on validation patients)") in block  # evaluate's margin rule
    assert "The external set chose nothing" in block


def test_the_demos_clinical_step_is_named_only_when_the_summary_shows_it():
    rows = [("cnn", False, 0.80), ("vit", False, 0.70), ("cnn-cf", True, 0.82), ("clinical-only", True, 0.60)]
    summary = pd.DataFrame([{"configuration": c, "set": "internal", "clinical": k, "auc_mean": a} for c, k, a in rows])
    assert clinical_step(summary).startswith("which image configuration was trained again with clinical "
                                             "features: cnn (highest mean internal AUC")
    summary.loc[summary["configuration"] == "vit", "auc_mean"] = 0.9  # cnn-cf no longer follows the rule
    assert clinical_step(summary) is None


def test_configurations_table_says_what_does_not_apply(report_artefacts):
    inputs = _inputs(report_artefacts)
    vit = inputs.configs["vitlora"]

    def changed(model: dict, training: dict, **recorded):
        trained = dataclasses.replace(vit.trained, model=dataclasses.replace(vit.trained.model, **model),
                                      training=dataclasses.replace(vit.trained.training, **training))
        return dataclasses.replace(vit, trained=trained, raw={**vit.raw, **recorded})

    probe = changed(dict(backbone="resnet_test", method="linear"), dict(feature_cache=True, augment=True))
    full = changed(dict(backbone="resnet_test", method="full"),
                   dict(feature_cache=True, augment=True, batchnorm="frozen", frames="main"), precision="bf16")
    inputs.configs.update({"cnn-linear": probe, "cnn-full": full})
    rows = {cells[0]: cells for cells in (re.findall(r"<td>(.*?)</td>", row) for row in
                                          configurations_table(inputs).split("<tr>")[2:])}
    # epochs / batch / lr / patience, augment, BatchNorm, frames, training precision, trainable parameters
    assert rows["cnn-linear"][6:9] == ["n/a (frozen-feature cache)"] * 2 + ["all"]
    assert rows["cnn-full"][6:10] == ["yes", "frozen", "main", "bf16"]
    assert rows["vitlora"][6:10] == ["no", "n/a (no BatchNorm)", "all", "fp32"]
    assert rows["clinical"][5:11] == ["n/a (logistic regression)"] * 6
    setup = unescape(setup_section(inputs))
    assert "Scoring precision of the image runs (validation AUC for early stopping, predictions.csv): fp32" in setup


def test_no_nan_reaches_the_page_where_numbers_are_missing(report_artefacts):
    inputs = _inputs(report_artefacts)
    inputs.summary[["auc_sd", "ensemble_auc_ci_low", "sensitivity_sd"]] = float("nan")
    chosen = inputs.evaluation["ensembles"][inputs.chosen]
    chosen.update(threshold=None, calibration_slope=None, n=None)
    inputs.ensembles["threshold"] = float("nan")
    for calibration in inputs.evaluation["calibration"].values():
        calibration["slope"] = None
    page = re.sub(r"data:image/png;base64,[^\"]+", "", render(inputs))
    assert not re.search(r"\bnan\b", page, flags=re.IGNORECASE) and not re.search(r"\bNone\b", page)
    external = inputs.summary[inputs.summary["set"] == "external"].iloc[0]
    assert roc_title(inputs, external["variant"]) == (f"{external['variant']}\nsplit AUC {external['auc_mean']:.3f} "
                                                      f"(SD n/a); ensemble {external['ensemble_auc']:.3f}")
    assert "calibration plot: not drawn (no calibration slope could be estimated for " in page


def test_an_undefined_ensemble_threshold_is_said_not_scored_as_all_negative(report_artefacts):
    """A constant model's ensemble has no threshold (evaluate's threshold_note): the failure analysis called
    every external patient negative (probability >= NaN is false) and listed each case as an error."""
    from vcpred.report.failures import failures_section
    from vcpred.report.performance import ensemble_table

    inputs = _inputs(report_artefacts)
    why = ("undefined: the model's validation predictions are constant (one probability for every patient of a "
           "split): Youden's threshold is -inf in every split")
    inputs.evaluation["ensembles"][inputs.chosen].update(threshold=None, threshold_note=why, sensitivity=None,
                                                         specificity=None)
    inputs.ensembles.loc[inputs.ensembles["variant"] == inputs.chosen, "threshold"] = float("nan")
    failures = unescape(failures_section(inputs))
    assert "misclassified" not in failures and "false negative" not in failures
    assert f"No failure analysis: the development threshold of the ensemble of {inputs.chosen} is {why}" in failures
    table = unescape(ensemble_table(inputs))
    row = table[table.index(f"<strong>{inputs.chosen}</strong>"):]
    assert re.match(r"<strong>[^<]+</strong></td><td>[^<]+</td><td>undefined</td>", row)
    assert f"{inputs.chosen}: threshold {why}" in table
    assert unescape(answers(inputs)["15"][0]).endswith(f"no category: the development threshold is {why}.")


def test_clinical_only_runs_record_no_device_and_say_so(report_artefacts):
    inputs = _inputs(report_artefacts)
    inputs.configs = {"clinical": inputs.configs["clinical"]}
    setup = unescape(setup_section(inputs))
    assert "device and training precision: n/a (clinical-only runs)" in setup and not re.search(r"\bNone\b", setup)
    assert "Scores: clinical-only logistic regressions only" in setup
