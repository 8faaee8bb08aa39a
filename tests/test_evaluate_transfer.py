"""The transfer check (evaluate/transfer.py): a variant that looks good internally and collapses at the
external set is flagged in evaluation.json, summary.csv, tables.md and on the console; a large drop that a
small external set's CI explains is not. Every number is recomputed here from the predictions written
(sklearn's AUC; the DeLong CI from vcpred.stats, checked live against R's pROC when it is installed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from test_evaluate import write_run
from test_stats_proc import _has_proc
from vcpred.cli import main
from vcpred.evaluate import evaluate_runs
from vcpred.evaluate.transfer import BELOW_REFERENCE, COLLAPSE, COLLAPSE_MARGIN, none_sentence, transfer_check
from vcpred.stats import delong_ci

N_DEV, N_SPLITS = 60, 3
# configuration -> (quality on validation patients, quality on external patients): logit = quality * z + noise
CONFIGS = {"clinical": (0.4, 0.4), "holds": (2.0, 2.0), "breaks": (3.0, 0.05)}


def _cohort(n_ext: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = N_DEV + n_ext
    z = rng.normal(0, 1.5, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-3 * z))).astype(int)  # nearly determined by z
    return pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)], "z": z, "label": label,
                         "set": ["validation"] * N_DEV + ["external"] * n_ext})


def _predictions(patients: pd.DataFrame, quality: tuple[float, float], split: int, seed: int) -> pd.DataFrame:
    """Split k validates the development patients i with i % 3 == k; one frame, so AP changes nothing."""
    rng = np.random.default_rng(seed)
    dev = patients[patients["set"] == "validation"]
    rows = pd.concat([dev[np.arange(len(dev)) % N_SPLITS == split], patients[patients["set"] == "external"]])
    slope = np.where(rows["set"] == "validation", quality[0], quality[1])
    logit = slope * rows["z"].to_numpy() + rng.normal(0, 1.0, len(rows))
    return pd.DataFrame({"patient_id": rows["patient_id"], "set": rows["set"], "split": split, "frame_offset": 0,
                         "probability": np.round(1 / (1 + np.exp(-logit)), 6), "label": rows["label"]})


def _runs(root: Path, patients: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    tables = {}
    for c, (name, quality) in enumerate(CONFIGS.items()):
        tables[name] = [_predictions(patients, quality, k, seed=10 * c + k) for k in range(N_SPLITS)]
        for k, table in enumerate(tables[name]):
            write_run(root, name, k, ["age"] if name == "clinical" else [], table)
    return tables


def _recomputed(tables: list[pd.DataFrame]) -> tuple[float, float, float, float, pd.DataFrame]:
    """(mean internal AUC, external ensemble AUC, its DeLong CI low, high, the ensemble) by hand."""
    internal = np.mean([roc_auc_score(t.loc[t["set"] == "validation", "label"],
                                      t.loc[t["set"] == "validation", "probability"]) for t in tables])
    external = pd.concat([t[t["set"] == "external"].set_index("patient_id") for t in tables])
    ensemble = external.groupby(level=0).agg(label=("label", "first"), probability=("probability", "mean"))
    auc = roc_auc_score(ensemble["label"], ensemble["probability"])
    _, low, high = delong_ci(ensemble["label"], ensemble["probability"])
    return internal, auc, low, high, ensemble


def _expected_flags(numbers: dict[str, tuple], reference: str) -> dict[str, list[str]]:
    """The documented rule applied to the recomputed numbers."""
    _, ref_auc, ref_low, ref_high, _ = numbers[reference]
    half = max(ref_auc - ref_low, ref_high - ref_auc)
    out = {}
    for label, (internal, auc, _, high, _) in numbers.items():
        flags = [COLLAPSE] if internal - auc > COLLAPSE_MARGIN and high < internal else []
        flags += [BELOW_REFERENCE] if label != reference and auc < ref_auc - half else []
        out[label] = flags
    return out


def _evaluate(tmp_path: Path, n_ext: int, seed: int, capsys) -> tuple[dict, Path, str, dict]:
    patients = _cohort(n_ext, seed)
    tables = _runs(tmp_path / "runs", patients)
    out = tmp_path / "EVAL"
    assert main(["evaluate", str(tmp_path / "runs"), "--out", str(out), "--reference", "clinical",
                 "--no-figures"]) == 0
    console = capsys.readouterr().out
    numbers = {name: _recomputed(t) for name, t in tables.items()}
    return numbers, out, console, json.loads((out / "evaluation.json").read_text())


def test_a_variant_that_collapses_externally_is_flagged_everywhere_and_one_that_holds_is_not(tmp_path, capsys):
    numbers, out, console, evaluation = _evaluate(tmp_path, n_ext=150, seed=1, capsys=capsys)
    transfer = evaluation["transfer"]
    expected = _expected_flags(numbers, "clinical")
    # the construction does what it says: breaks drops far and beyond its CI, holds does not drop
    assert expected == {"clinical": [], "holds": [], "breaks": [COLLAPSE, BELOW_REFERENCE]}, numbers
    assert transfer["reference"] == "clinical" and transfer["margin"] == COLLAPSE_MARGIN
    for label, (internal, auc, low, high, _) in numbers.items():
        got = transfer["variants"][label]
        assert got["internal_auc"] == pytest.approx(internal, abs=1e-9)
        assert got["external_auc"] == pytest.approx(auc, abs=1e-9)
        assert (got["external_ci_low"], got["external_ci_high"]) == pytest.approx((low, high), abs=1e-9)
        assert got["drop"] == pytest.approx(internal - auc, abs=1e-9)
        assert got["flags"] == expected[label], label
    # the choice is the validation data's: breaks ranks best internally and is chosen, flagged or not
    assert evaluation["best"] == transfer["chosen"] == "breaks"

    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    external = summary[summary["set"] == "external"].set_index("variant")
    assert external.loc["breaks", "transfer_flag"] == "collapse;below-reference"
    assert external.loc["holds", "transfer_flag"] == external.loc["clinical", "transfer_flag"] == ""
    assert float(external.loc["breaks", "transfer_drop"]) == pytest.approx(numbers["breaks"][0] - numbers["breaks"][1])
    assert (summary.loc[summary["set"] == "internal", "transfer_flag"] == "").all()

    internal, auc = numbers["breaks"][:2]
    chosen = f"The chosen model's external AUC is {auc:.3f}"
    tables = (out / "tables.md").read_text()
    table3 = tables[tables.index("## External validation"):tables.index("## Choosing the best variant")]
    assert f"**{chosen}" in table3 and f"its internal {internal:.3f} (breaks, mean over splits): it collapses" in table3
    assert "- breaks: collapse at the external set" in table3 and "below the reference at the external set" in table3
    assert "- holds" not in table3 and "- clinical" not in table3
    assert "the external set does not change which variant is chosen" in table3
    assert chosen in console and "breaks: collapse at the external set" in console
    assert console.index(chosen) < console.index("breaks: collapse at the external set")


def test_the_flags_change_no_choice(tmp_path):
    """The same validation predictions with an external set where breaks holds: the same variant is
    chosen, now unflagged (the check reads the external set; the choice never does)."""
    patients = _cohort(150, 1)
    _runs(tmp_path / "runs", patients)
    for k in range(N_SPLITS):  # the same noise draws: the validation rows are unchanged
        (tmp_path / "runs" / "breaks" / f"split-{k:02d}").rename(tmp_path / f"old-{k}")
        write_run(tmp_path / "runs", "breaks", k, [], _predictions(patients, (3.0, 3.0), k, seed=20 + k))
        old = pd.read_csv(tmp_path / f"old-{k}" / "predictions.csv")
        new = pd.read_csv(tmp_path / "runs" / "breaks" / f"split-{k:02d}" / "predictions.csv")
        assert old[old["set"] == "validation"].equals(new[new["set"] == "validation"])
    ev = evaluate_runs(tmp_path / "runs", reference="clinical")
    assert ev.best.label == "breaks" and ev.transfer.chosen == "breaks" and not ev.transfer.flagged


def test_a_large_drop_that_a_small_external_set_explains_is_not_a_collapse(tmp_path, capsys):
    numbers, out, console, evaluation = _evaluate(tmp_path, n_ext=10, seed=1, capsys=capsys)
    internal, auc, _, high, _ = numbers["breaks"]
    assert internal - auc > COLLAPSE_MARGIN and high >= internal, numbers["breaks"]  # the case this test is about
    got = evaluation["transfer"]["variants"]["breaks"]
    assert COLLAPSE not in got["flags"] and got["drop"] == pytest.approx(internal - auc, abs=1e-9)
    assert got["flags"] == _expected_flags(numbers, "clinical")["breaks"]
    assert "breaks: collapse" not in console and "breaks: collapse" not in (out / "tables.md").read_text()


def test_the_rule_at_its_edges():
    """Strict inequalities; the reference is never below itself; an undefined external AUC is left out;
    the half-width is the CI's wider side (it is clipped at 1)."""
    internal = {"ref": 0.80, "a": 0.90, "b": 0.90, "c": 0.90, "d": 0.90}
    external = {"ref": {"auc": 0.95, "auc_ci_low": 0.85, "auc_ci_high": 1.0},  # half-width 0.10, not 0.075
                "a": {"auc": 0.70, "auc_ci_low": 0.60, "auc_ci_high": 0.80},  # drop 0.20, CI below internal
                "b": {"auc": 0.85, "auc_ci_low": 0.75, "auc_ci_high": 0.95},  # drop 0.05: no collapse
                "c": {"auc": 0.70, "auc_ci_low": 0.45, "auc_ci_high": 0.90},  # upper bound = internal: no collapse
                "d": {"auc": None, "auc_ci_low": None, "auc_ci_high": None}}
    transfer = transfer_check(internal, external, "ref", "a")
    assert transfer.reference_half_width == pytest.approx(0.10)
    assert transfer.variants["a"].flags == [COLLAPSE, BELOW_REFERENCE]
    assert transfer.variants["b"].flags == [] and transfer.variants["c"].flags == [BELOW_REFERENCE]
    assert transfer.variants["ref"].flags == [] and "d" not in transfer.variants
    assert list(transfer.flagged) == ["a", "c"]
    unchecked = transfer_check(internal, {"ref": external["d"], "a": external["d"]}, "ref", "a")
    assert unchecked.variants == {} and "none could be checked" in none_sentence(unchecked)
    assert "none could be checked" not in none_sentence(transfer_check(internal, {"b": external["b"]}, "ref", "b"))


@pytest.mark.skipif(not _has_proc(), reason="Rscript with pROC is not installed")
def test_the_external_delong_ci_is_prOC_s(tmp_path, capsys):
    """The CI the flags read is R pROC's ci.auc(method = 'delong') on the same ensemble."""
    patients = _cohort(40, 5)
    tables = _runs(tmp_path / "runs", patients)
    out = tmp_path / "EVAL"
    assert main(["--quiet", "evaluate", str(tmp_path / "runs"), "--out", str(out), "--reference", "clinical",
                 "--no-figures"]) == 0
    variants = json.loads((out / "evaluation.json").read_text())["transfer"]["variants"]
    frames = [_recomputed(t)[4].assign(variant=name) for name, t in tables.items()]
    pd.concat(frames).to_csv(tmp_path / "ensembles.csv")
    script = ('suppressMessages(library(pROC)); d <- read.csv(commandArgs(TRUE)[1]); for (v in unique(d$variant)) {'
              ' s <- d[d$variant == v, ]; r <- roc(s$label, s$probability, direction = "<", levels = c(0, 1),'
              ' quiet = TRUE); ci <- as.numeric(ci.auc(r, method = "delong"));'
              ' cat(v, sprintf("%.12f", ci), "\\n") }')
    result = subprocess.run(["Rscript", "-e", script, str(tmp_path / "ensembles.csv")], capture_output=True,
                            text=True, timeout=120, check=True)
    lines = result.stdout.strip().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(CONFIGS)
    for line in lines:
        name, low, auc, high = line.split()
        got = variants[name]
        assert (got["external_ci_low"], got["external_auc"], got["external_ci_high"]) == pytest.approx(
            (float(low), float(auc), float(high)), abs=1e-9), name
