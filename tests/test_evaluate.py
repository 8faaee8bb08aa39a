"""`vcpred evaluate` on RUNS folders written here from a known generative model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import patient_row, write_manifest
from vcpred.cli import main
from vcpred.evaluate import evaluate_runs
from vcpred.evaluate.aggregate import aggregate
from vcpred.evaluate.compare import bonferroni, holm
from vcpred.stats import roc_auc, youden_threshold

SUMMARY_COLUMNS = ["configuration", "ap", "clinical", "set", "auc_mean", "auc_sd", "sensitivity_mean",
                   "specificity_mean", "p_value"]
CONFIGS = {"vit": (1.2, []), "vit-cf": (1.6, ["age", "sex"]), "cnn": (0.6, [])}
N_DEV = 60


def cohort(n_dev: int = N_DEV, n_ext: int = 30, n_unlabelled: int = 4, seed: int = 0) -> pd.DataFrame:
    """Patients with a latent risk z and a 0/1 label drawn from logistic(z)."""
    rng = np.random.default_rng(seed)
    n = n_dev + n_ext
    z = rng.normal(0, 1.5, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    ids = [f"P{i:03d}" for i in range(n)]
    sets = ["development"] * n_dev + ["external"] * n_ext
    frame = pd.DataFrame({"patient_id": ids, "set": sets, "z": z, "label": label})
    frame.loc[frame.index[-n_unlabelled:], "label"] = np.nan  # unlabelled external patients
    return frame


def write_run(root: Path, name: str, split: int, clinical: list[str], table: pd.DataFrame,
              status: str = "done") -> Path:
    run_dir = root / name / f"split-{split:02d}"
    run_dir.mkdir(parents=True)
    n_val = int(table.loc[table["set"] == "validation", "patient_id"].nunique())
    config = {"configuration": name, "split": split, "clinical_columns": clinical, "status": status,
              "patients": {"train": N_DEV - n_val, "validation": n_val}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    table.to_csv(run_dir / "predictions.csv", index=False)
    return run_dir


def predictions(patients: pd.DataFrame, quality: float, split: int, seed: int,
                frames=(-2, -1, 0, 1, 2)) -> pd.DataFrame:
    """One row per (validation or external patient, frame): logistic(quality * z + frame noise)."""
    rng = np.random.default_rng(seed)
    dev = patients[patients["set"] == "development"]
    val_ids = set(dev.sample(frac=0.3, random_state=split)["patient_id"])
    chosen = patients[patients["patient_id"].isin(val_ids) | (patients["set"] == "external")]
    rows = []
    for _, p in chosen.iterrows():
        for offset in frames:
            logit = quality * p["z"] + rng.normal(0, 1.0)
            rows.append({"patient_id": p["patient_id"], "set": "validation" if p["set"] == "development"
                         else "external", "split": split, "frame_offset": offset,
                         "probability": round(float(1 / (1 + np.exp(-logit))), 6),
                         "label": "" if np.isnan(p["label"]) else int(p["label"])})
    return pd.DataFrame(rows)


def make_runs(root: Path, patients: pd.DataFrame, n_splits: int = 3, configs=CONFIGS) -> Path:
    for c, (name, (quality, clinical)) in enumerate(configs.items()):
        for split in range(n_splits):
            write_run(root, name, split, clinical, predictions(patients, quality, split, seed=100 * c + split))
    return root


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    return cohort()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, patients) -> Path:
    return make_runs(tmp_path_factory.mktemp("runs"), patients)


@pytest.fixture(scope="module")
def evaluated(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "EVAL"
    assert main(["--quiet", "evaluate", str(runs), "--out", str(out)]) == 0
    return out


def test_summary_shape_and_columns(evaluated):
    summary = pd.read_csv(evaluated / "summary.csv", dtype={"ap": str, "clinical": str})
    assert list(summary.columns[:4]) == ["configuration", "ap", "clinical", "variant"]
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)
    assert len(summary) == len(CONFIGS) * 2 * 2
    assert set(summary["set"]) == {"internal", "external"} and set(summary["ap"]) == {"true", "false"}
    clinical = summary.set_index(["configuration", "ap", "set"])["clinical"]
    assert clinical["vit-cf", "true", "external"] == "true" and clinical["vit", "false", "internal"] == "false"
    assert summary["auc_mean"].between(0, 1).all() and (summary["n_splits"] == 3).all()
    best = summary[summary["best"]]
    assert len(best) == 2 and best["p_value"].isna().all() and summary[~summary["best"]]["p_value"].notna().all()


def test_outputs_written(evaluated):
    names = {p.name for p in evaluated.iterdir()}
    assert {"summary.csv", "per_split.csv", "evaluation.json", "tables.md", "ensemble_predictions.csv"} <= names
    assert {p.name for p in (evaluated / "figures").iterdir()} == {"roc_ensembles.png", "calibration.png",
                                                                    "decision_curve.png"}
    result = json.loads((evaluated / "evaluation.json").read_text())
    assert result["generator"] == "vcpred evaluate"
    assert result["comparisons"]["n_comparisons"] == 5
    assert set(result["ensembles"]) == set(result["calibration"]) == set(result["decision_curves"]["net_benefit"])
    tables = (evaluated / "tables.md").read_text()
    assert "Internal validation" in tables and "External validation" in tables
    assert "Holm correction over 5 comparisons" in tables and "Nadeau-Bengio" in tables
    assert tables.count("(best") == 2  # "(best)", or "(best; small sample, ...)" on a small set


def test_every_file_written_is_recorded_with_its_sha256(evaluated):
    """sha256.json, as a run's config.yaml `outputs`: what reads EVAL later can tell an edited file."""
    from vcpred.hashing import sha256_file

    record = json.loads((evaluated / "sha256.json").read_text())
    written = sorted(p.relative_to(evaluated).as_posix() for p in evaluated.rglob("*")
                     if p.is_file() and p.name not in ("sha256.json", ".vcpred-output.json"))
    assert record["generator"] == "vcpred evaluate" and sorted(record["outputs"]) == written
    assert "figures/roc_ensembles.png" in written
    assert all(record["outputs"][name] == sha256_file(evaluated / name) for name in written)


def test_ap_and_no_ap_aggregation(runs, evaluated):
    table = pd.read_csv(runs / "vit" / "split-01" / "predictions.csv", keep_default_na=False)
    val = table[table["set"] == "validation"].copy()
    val["label"] = val["label"].astype(int)
    main_frame = val[val["frame_offset"] == 0].set_index("patient_id").sort_index()
    mean = val.groupby("patient_id")[["probability", "label"]].mean()
    per_split = pd.read_csv(evaluated / "per_split.csv", dtype={"ap": str}).set_index(["variant", "split"])
    no_ap, ap = per_split.loc[("vit", 1)], per_split.loc[("vit + AP", 1)]
    assert no_ap["validation_auc"] == pytest.approx(roc_auc(main_frame["label"], main_frame["probability"]))
    assert ap["validation_auc"] == pytest.approx(roc_auc(mean["label"], mean["probability"]))
    assert ap["validation_auc"] != pytest.approx(no_ap["validation_auc"])


def test_aggregation_methods_by_hand():
    table = pd.DataFrame({"patient_id": ["a"] * 3 + ["b"], "set": ["validation"] * 4, "split": 0,
                          "frame_offset": [-1, 0, 1, 0], "probability": [0.1, 0.5, 0.9, 0.3],
                          "label": [1.0, 1.0, 1.0, 0.0]})
    assert aggregate(table, ap=False)["probability"].tolist() == [0.5, 0.3]
    assert aggregate(table, ap=True)["probability"].tolist() == pytest.approx([0.5, 0.3])
    table.loc[2, "probability"] = 0.99
    assert aggregate(table, ap=True, rule="median")["probability"]["a"] == 0.5
    logit = np.log(np.array([0.1, 0.5, 0.99]) / (1 - np.array([0.1, 0.5, 0.99]))).mean()
    assert aggregate(table, ap=True, rule="logit_mean")["probability"]["a"] == pytest.approx(1 / (1 + np.exp(-logit)))
    assert aggregate(table, ap=True, rule="logit_mean")["n_frames"].tolist() == [3, 1]


def test_thresholds_come_from_validation_only(runs, evaluated):
    per_split = pd.read_csv(evaluated / "per_split.csv").set_index(["variant", "split"])
    for name in CONFIGS:
        for split in range(3):
            table = pd.read_csv(runs / name / f"split-{split:02d}" / "predictions.csv", keep_default_na=False)
            val = table[(table["set"] == "validation") & (table["frame_offset"] == 0)]
            want, _, _ = youden_threshold(val["label"].astype(int), val["probability"])
            assert per_split.loc[(name, split), "threshold"] == pytest.approx(want)


@pytest.mark.parametrize("leak", ["invert", "shuffle"])
def test_planted_leak_external_labels_change_nothing_chosen(tmp_path, patients, leak):
    base = make_runs(tmp_path / "a", patients)
    changed = patients.copy()
    ext = changed["set"] == "external"
    if leak == "invert":
        changed.loc[ext, "label"] = 1 - changed.loc[ext, "label"]
    else:
        changed.loc[ext, "label"] = np.random.default_rng(9).permutation(changed.loc[ext, "label"].to_numpy())
    leaked = make_runs(tmp_path / "b", changed)
    a, b = evaluate_runs(base), evaluate_runs(leaked)
    assert a.per_split["external_auc"].tolist() != pytest.approx(b.per_split["external_auc"].tolist())
    assert a.per_split["threshold"].tolist() == b.per_split["threshold"].tolist()
    assert {v.label: e.threshold for v, e in a.ensembles.items()} == \
           {v.label: e.threshold for v, e in b.ensembles.items()}
    assert a.best == b.best


def test_unfinished_runs_skipped_and_reported(tmp_path, patients, capsys):
    root = make_runs(tmp_path / "runs", patients, n_splits=2, configs={"vit": (1.2, []), "cnn": (0.6, [])})
    write_run(root, "vit", 7, [], predictions(patients, 1.2, 7, seed=7), status="running")
    (root / "cnn" / "split-05").mkdir()  # crashed before anything was written
    done = write_run(root, "cnn", 6, [], predictions(patients, 0.6, 6, seed=6))
    (done / "predictions.csv").unlink()
    out = tmp_path / "EVAL"
    assert main(["evaluate", str(root), "--out", str(out), "--no-figures"]) == 0
    stdout = capsys.readouterr().out
    assert "skipped 3 unfinished run(s)" in stdout and "split-07 (status is 'running'" in stdout
    skipped = json.loads((out / "evaluation.json").read_text())["skipped_runs"]
    assert sorted(s["reason"] for s in skipped) == ["no config.yaml", "no predictions.csv",
                                                    "status is 'running', not 'done'"]
    assert (pd.read_csv(out / "summary.csv")["n_splits"] == 2).all()


def test_best_option_and_adjustments(runs, tmp_path):
    ev = evaluate_runs(runs, best="cnn+ap")
    assert ev.best.label == "cnn + AP"
    assert ev.comparisons.best == "cnn + AP" and len(ev.comparisons.comparisons) == 5
    assert ev.comparisons.best_rule == "chosen with --best"
    assert ev.selection.rule == "--best" and ev.selection.winner == "cnn + AP"
    old_rule = evaluate_runs(runs, selection_rule="mean-auc")  # the earlier rule, kept by name
    means = old_rule.per_split.groupby("variant")["validation_auc"].mean()
    assert old_rule.best.label == means.idxmax() and old_rule.comparisons.best_rule == "highest mean internal AUC"
    default = evaluate_runs(runs)  # the margin rule: the reference (no image-free configuration: the first)
    assert default.selection.rule == "margin" and default.selection.reference == "cnn"
    assert default.best.label == default.selection.winner
    assert default.comparisons.best_rule.startswith("the reference cnn unless a challenger's mean internal AUC")
    for comp in default.comparisons.comparisons:
        primary = comp.external.primary
        assert primary.p_holm <= primary.p_bonferroni + 1e-12
        assert 0 <= comp.external.per_split_delong.n_significant <= 3


def test_holm_and_bonferroni():
    p = [0.01, 0.04, 0.03, float("nan")]
    assert bonferroni(p)[:3] == pytest.approx([0.04, 0.16, 0.12])
    assert holm(p)[:3] == pytest.approx([0.03, 0.06, 0.06])  # 3*0.01, max(2*0.03, .03), max(1*0.04, .06)


def test_subgroups_from_manifest(runs, patients, tmp_path):
    rows = [patient_row(i, set_name=s, label="" if np.isnan(y) else int(y), age=55 + i % 40)
            for i, (s, y) in enumerate(zip(patients["set"], patients["label"]))]
    manifest = write_manifest(tmp_path / "cohort", rows, make_images=False)
    ev = evaluate_runs(runs, manifest=str(manifest))
    groups = ev.subgroups["vit + AP"]
    assert set(groups) == {"sex", "age_band", "site"}
    n_labelled = int(patients.loc[patients["set"] == "external", "label"].notna().sum())
    assert sum(g["n"] for g in groups["sex"].values()) == n_labelled
    assert set(groups["age_band"]) <= {"<60", "60-69", "70-79", "80+"}


def test_ensemble_threshold_leaves_out_infinite_split_thresholds_like_export():
    """One rule for the ensemble's threshold in evaluation and in exported models."""
    import math

    from vcpred.evaluate.per_split import development_threshold

    assert development_threshold([0.2, 0.4, math.inf, 0.9]) == 0.4
    assert development_threshold([0.2, None, 0.6]) == pytest.approx(0.4)
    assert math.isnan(development_threshold([math.inf, None]))


def test_internal_p_is_the_corrected_resampled_t_test(runs, evaluated):
    """Recomputed from per_split.csv through scipy's one-sample t statistic, rescaled:
    t_corrected = t_plain * sqrt((1/J) / (1/J + n_val/n_train))."""
    from scipy import stats

    per_split = pd.read_csv(evaluated / "per_split.csv")
    summary = pd.read_csv(evaluated / "summary.csv")
    best = summary.loc[summary["best"] & summary["set"].eq("internal"), "variant"].item()
    auc = per_split.pivot(index="split", columns="variant", values="validation_auc")
    ratio = (per_split["validation_n"] / per_split["n_train"]).mean()
    internal = summary[summary["set"].eq("internal") & ~summary["best"]]
    assert len(internal) == 5
    for _, row in internal.iterrows():
        d = auc[best] - auc[row["variant"]]
        j = len(d)
        t = stats.ttest_1samp(d, 0.0).statistic * np.sqrt((1 / j) / (1 / j + ratio))
        assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), j - 1), abs=1e-6)
        assert row["p_over_splits_t"] == pytest.approx(stats.ttest_rel(auc[best], auc[row["variant"]]).pvalue)
        assert row["p_value"] > row["p_over_splits_t"]  # the correction only widens
        assert row["significant"] == (row["p_holm"] < 0.05)


def test_corrected_t_edge_cases_and_wilcoxon_ties():
    from vcpred.evaluate.compare import corrected_resampled_t, over_splits

    assert corrected_resampled_t(np.array([0.8, 0.7]), np.array([0.8, 0.7]), 0.25) == 1.0
    assert corrected_resampled_t(np.array([0.8, 0.7]), np.array([0.7, 0.6]), 0.25) == 0.0
    assert np.isnan(corrected_resampled_t(np.array([0.8]), np.array([0.7]), 0.25))
    best = pd.Series([0.80, 0.75, 0.90, 0.85, 0.70])
    rounding = best - np.array([1e-16, -1e-16, 0.0, 2e-16, 0.0])
    tests = over_splits(rounding, best, 0.25)
    assert tests.wilcoxon_p == 1.0 and tests.t_test_p == 1.0 and tests.corrected_t_p == 1.0
    shifted = best - np.array([0.02, 0.01, 1e-16, 0.03, 0.015])  # one rounding-level difference: a tie
    from scipy.stats import wilcoxon
    want = wilcoxon(np.array([0.02, 0.01, 0.03, 0.015])).pvalue
    assert over_splits(shifted, best, 0.25).wilcoxon_p == pytest.approx(want)


def test_identical_variants_are_shown_and_counted_once(tmp_path, patients):
    """A one-frame configuration gives the same table with and without AP: one row, one comparison."""
    root = make_runs(tmp_path / "runs", patients, n_splits=3,
                     configs={"vit": (1.2, []), "cnn": (0.6, [])})
    for split in range(3):
        table = predictions(patients, 0.9, split, seed=50 + split, frames=(0,))
        write_run(root, "clinical-only", split, ["age"], table)
    ev = evaluate_runs(root)
    labels = [v.label for v in ev.variants]
    assert "clinical-only" in labels and "clinical-only + AP" not in labels
    assert ev.comparisons.identical_variants == {"clinical-only + AP": "clinical-only"}
    assert ev.comparisons.n_comparisons == len(labels) - 1 == 4
    assert set(ev.per_split["variant"]) == set(labels)


def test_typed_records_round_trip_through_evaluation_json(runs, evaluated):
    """evaluation.json's comparisons, calibration and decision curves read back into the records evaluate
    built (and written again unchanged): the file is the records' to_dict, nothing else."""
    from vcpred.evaluate.calibration import calibration_json, read_calibration
    from vcpred.evaluate.compare import Comparison, PairedDelong, read_comparisons
    from vcpred.evaluate.decision import decision_json, read_decision
    from vcpred.jsonio import to_dict

    result = json.loads((evaluated / "evaluation.json").read_text())
    comparisons = read_comparisons(result["comparisons"])
    calibration = read_calibration(result["calibration"])
    decision = read_decision(result["decision_curves"])
    assert to_dict(comparisons) == result["comparisons"]
    assert calibration_json(calibration) == result["calibration"]
    assert decision_json(decision) == result["decision_curves"]
    assert all(isinstance(c, Comparison) and isinstance(c.external.ensemble_delong, PairedDelong)
               for c in comparisons.comparisons)
    split_tests = comparisons.comparisons[0].external.per_split_delong
    assert set(split_tests.splits) == {0, 1, 2} and isinstance(split_tests.splits[0], PairedDelong)
    ev = evaluate_runs(runs)  # the same runs: the records evaluate returns equal the ones read back
    assert to_dict(ev.comparisons) == to_dict(comparisons) and ev.decision_curves == decision
    assert calibration_json(ev.calibration) == calibration_json(calibration)


def _site_manifest(patients: pd.DataFrame, folder: Path) -> Path:
    """The cohort's manifest with development sites A, B, C (external: D)."""
    rows = [patient_row(i, set_name=s, label="" if np.isnan(y) else int(y),
                        site="ABC"[i % 3] if s == "development" else "D")
            for i, (s, y) in enumerate(zip(patients["set"], patients["label"]))]
    return write_manifest(folder, rows, make_images=False)


def test_per_site_validation_and_the_selection_are_written_and_shown(runs, patients, tmp_path, capsys):
    from vcpred.evaluate.selection import Selection
    from vcpred.evaluate.sites import VariantSites
    from vcpred.jsonio import from_dict

    manifest = _site_manifest(patients, tmp_path / "cohort")
    out = tmp_path / "EVAL"
    assert main(["evaluate", str(runs), "--out", str(out), "--manifest", str(manifest), "--no-figures"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "evaluation.json").read_text())
    selection = from_dict(Selection, result["selection"])
    assert selection.rule == "margin" and selection.reference == "cnn" and result["best"] == selection.winner
    assert selection.score == "worst-site out-of-split AUC" and "(A, B, C)" in selection.score_reason
    assert set(selection.scores) == {v["variant"] for v in result["variants"]}
    assert selection.nested is not None and set(selection.nested.choices) == {0, 1, 2}
    sites = {label: from_dict(VariantSites, found) for label, found in result["sites"].items()}
    table = pd.read_csv(out / "sites.csv", keep_default_na=False)
    for label, found in sites.items():
        assert set(found.sites) == {"A", "B", "C"} and found.worst_site in found.sites
        assert selection.scores[label] == pytest.approx(found.worst_site_auc)
        rows = table[table["variant"] == label].set_index("level")
        assert rows.loc["pooled", "auc"] == pytest.approx(found.pooled.auc)
        worst = table["worst"].astype(str).str.lower().eq("true")
        assert table.loc[(table["variant"] == label) & worst, "site"].tolist() == [found.worst_site]
    assert "Selection rule: keep the reference cnn" in printed and selection.reason in printed
    assert "nested estimate" in printed and "pooled" in printed
    tables = (out / "tables.md").read_text()
    assert "## Choosing the best variant" in tables and "## Validation AUC per development site" in tables


def test_reference_option(runs, tmp_path, capsys):
    ev = evaluate_runs(runs, reference="vit-cf+AP")
    assert ev.selection.reference == "vit-cf + AP"
    assert main(["evaluate", str(runs), "--out", str(tmp_path / "a"), "--reference", "resnet"]) == 2
    assert "error: --reference 'resnet' matches no evaluated variant" in capsys.readouterr().err
    assert main(["evaluate", str(runs), "--out", str(tmp_path / "b"), "--reference", "cnn", "--select", "mean-auc"]) == 2
    assert "error: --reference is the margin rule's" in capsys.readouterr().err
