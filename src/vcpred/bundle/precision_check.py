"""At export: how far bf16 moves each split model's validation probabilities (bundle.json
`bf16_check`), the evidence `--precision auto` needs before it predicts in bf16.

For each split, up to `patients` of its validation patients (the first by id) are read from the
run's prepared store and scored by the exported network as vcpred's bf16 path computes them
(bf16 Linear/Conv weights under autocast), their frames in one batch (the main frame alone when the
bundle predicts without AP); their probabilities, combined over frames the way the bundle predicts
(AP and its aggregate, or the main frame), are compared with
the fp32 ones the run recorded in predictions.csv. The largest change of one split model's
probability bounds the change of the ensemble mean too. The splits are checked in order until one
reaches the tolerance (the decision, fp32, is then made).

A screen comes first: the first SCREEN_PATIENTS validation patients of each split, in order. A change
that reaches the tolerance there decides fp32 at a fraction of the cost (a larger set of patients can
only show a larger largest change); otherwise the full check runs and decides. Both passes are
recorded (`screen`).

bf16 is computed by vcpred.models.bf16_emulation (fp32 kernels, every bf16 value rounded as the bf16
run holds it), not by torch's bf16 kernels: on a CPU without native bf16 those are emulated and took
16 minutes of a demo's export. So the check costs an fp32 forward and gives the same number on every
CPU; tests/test_bf16_emulation.py compares it with torch's bf16 kernels.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

from vcpred.bundle.files import SHARED_BACKBONE_FILE, SplitEntry
from vcpred.evaluate.aggregate import aggregate
from vcpred.models.inputs import three_channels
from vcpred.models.bf16_emulation import METHOD, emulated_bf16
from vcpred.models.precision import BF16_TOLERANCE, native_bf16
from vcpred.predict.bundle import Architectures, load_split
from vcpred.predict.predict import clinical_rows
from vcpred.runs import RunRecord, read_predictions


SCREEN_PATIENTS = 2  # per split, in the screen before the full check


def bf16_check(folder: Path, runs: list[RunRecord], entries: list[dict], *, ap: bool, rule: str,
               patients: int) -> dict | None:
    """The screen, then (unless it decided) the full check (None when patients is 0: not checked, so
    auto stays fp32)."""
    if patients <= 0:
        return None
    from safetensors.torch import load_file

    shared_file = folder / SHARED_BACKBONE_FILE  # the backbone the split models share, when kept once
    shared = load_file(str(shared_file)) if shared_file.is_file() else {}
    made: Architectures = {}  # as load_bundle: each architecture built once, copied for the other splits
    loaded: dict[str, tuple] = {}  # split dir -> (model, recorded predictions, manifest rows): read once for both passes
    manifests: dict[str, dict] = {}  # manifest path -> records by id: the split runs share one, checked once

    def over_splits(count: int) -> tuple[list[float], int]:
        return _over_splits(folder, runs, entries, shared, made, loaded, manifests, ap=ap, rule=rule, patients=count)

    screen_patients = min(SCREEN_PATIENTS, patients)
    changes, checked = over_splits(screen_patients)
    screen = {"patients_per_split": screen_patients, "per_split": [float(c) for c in changes],
              "decided": not changes[-1] < BF16_TOLERANCE or screen_patients == patients}
    if not screen["decided"]:
        changes, checked = over_splits(patients)
    largest = max(changes, key=lambda c: math.inf if math.isnan(c) else c)
    return {"max_probability_change": float(largest), "per_split": [float(c) for c in changes],
            "splits_checked": len(changes), "splits": len(runs),
            "stopped_early": len(changes) < len(runs), "screen": screen,
            "patients": checked, "patients_per_split": screen_patients if screen["decided"] else patients,
            "tolerance": BF16_TOLERANCE,
            "compared_with": "the fp32 validation probabilities the runs recorded (predictions.csv)",
            "method": METHOD, "native_bf16_at_export": native_bf16()}


def _over_splits(folder: Path, runs: list[RunRecord], entries: list[dict], shared: dict, made: Architectures,
                 loaded: dict, manifests: dict, *, ap: bool, rule: str, patients: int) -> tuple[list[float], int]:
    """Each split's change in order, up to the first split model whose change is not below the
    tolerance: auto then predicts in fp32 whatever the other split models would show, so checking
    them would cost time for nothing. Returns (changes, patients scored)."""
    changes, checked = [], 0
    for run, entry in zip(runs, entries):
        if entry["dir"] not in loaded:
            loaded[entry["dir"]] = _split_inputs(folder / entry["dir"], run, shared, made, manifests)
        change, count = _split_change(run, *loaded[entry["dir"]], ap=ap, rule=rule, patients=patients)
        changes.append(change)
        checked += count
        if not change < BF16_TOLERANCE:  # NaN (nothing measured) stops it too
            break
    return changes, checked


def _split_inputs(split_dir: Path, run: RunRecord, shared: dict, made: Architectures, manifests: dict) -> tuple:
    """(the split's network as predict loads it, the fp32 validation predictions its run recorded, the
    manifest's records by patient id, from `manifests` when an earlier split read the same file)."""
    from vcpred.cohort import load_manifest

    recorded = read_predictions(run.path / "predictions.csv", split=run.split)
    key = str(Path(run.manifest).resolve())
    if key not in manifests:
        manifests[key] = {r.patient_id: r for r in load_manifest(run.manifest, check_files=False).records}
    by_id = manifests[key]
    model = load_split(split_dir.parent, SplitEntry(run.split, split_dir.name), "image", shared, made=made)
    return model, recorded[recorded["set"] == "validation"], by_id


def _split_change(run: RunRecord, model, recorded: pd.DataFrame, by_id: dict, *, ap: bool, rule: str,
                  patients: int) -> tuple[float, int]:
    from vcpred.imaging import load_prepared  # the store read through its own API (hashes checked)

    chosen = sorted(recorded["patient_id"].unique())[:patients]
    if not chosen:  # nothing to measure: no number, so auto stays fp32
        return float("nan"), 0
    keys, frames, clinical = [], [], []
    for patient_id in chosen:
        prepared = load_prepared(run.store, patient_id)
        offsets = [int(offset) for offset in prepared.frame_offsets]
        # without AP the bundle predicts from the main frame alone: scoring the others costs time for nothing
        scored = range(len(offsets)) if ap else [offsets.index(0)]
        frames.append(torch.from_numpy(three_channels(prepared.frames[list(scored)])))
        clinical.append(clinical_rows(model, by_id[patient_id], len(frames[-1])))
        keys += [(patient_id, offsets[i]) for i in scored]
    with torch.no_grad(), emulated_bf16(model.net) as net:
        logits = net(torch.cat(frames), None if clinical[0] is None else torch.cat(clinical))
    ours = pd.DataFrame(keys, columns=["patient_id", "frame_offset"]).assign(bf16=torch.sigmoid(logits).numpy())
    both = recorded.merge(ours, on=["patient_id", "frame_offset"], how="inner")
    fp32 = aggregate(both, ap=ap, rule=rule)["probability"]
    bf16 = aggregate(both.assign(probability=both["bf16"]), ap=ap, rule=rule)["probability"]
    return float((fp32 - bf16).abs().max()), len(fp32)
