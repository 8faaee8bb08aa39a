"""At export: how far bf16 moves each split model's validation probabilities (bundle.json
`bf16_check`), the evidence `--precision auto` needs before it predicts in bf16.

For each split, up to `patients` of its validation patients (the first by id) are read from the
run's prepared store and scored by the exported network in bf16 (vcpred.models.precision); their
probabilities, combined over frames the way the bundle predicts (AP and its aggregate, or the main
frame), are compared with the fp32 ones the run recorded in predictions.csv. The largest change of
one split model's probability bounds the change of the ensemble mean too. It is measured the same
way on every CPU (bf16 is emulated where it is not native, only slower).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from vcpred.bundle.files import SHARED_BACKBONE_FILE, SplitEntry
from vcpred.evaluate.aggregate import aggregate
from vcpred.models.inputs import three_channels
from vcpred.models.precision import BF16_TOLERANCE, inference_context, native_bf16, to_bf16_weights
from vcpred.predict.bundle import Architectures, load_split
from vcpred.predict.predict import clinical_rows
from vcpred.runs import RunRecord, read_predictions


def bf16_check(folder: Path, runs: list[RunRecord], entries: list[dict], *, ap: bool, rule: str,
               patients: int) -> dict | None:
    """The check over every split (None when patients is 0: not checked, so auto stays fp32)."""
    if patients <= 0:
        return None
    changes, checked = [], 0
    from safetensors.torch import load_file

    shared_file = folder / SHARED_BACKBONE_FILE  # the backbone the split models share, when kept once
    shared = load_file(str(shared_file)) if shared_file.is_file() else {}
    made: Architectures = {}  # as load_bundle: each architecture built once, copied for the other splits
    for run, entry in zip(runs, entries):
        change, count = _split_change(folder / entry["dir"], run, shared, made, ap=ap, rule=rule, patients=patients)
        changes.append(change)
        checked += count
    return {"max_probability_change": float(max(changes)), "per_split": [float(c) for c in changes],
            "patients": checked, "patients_per_split": patients, "tolerance": BF16_TOLERANCE,
            "compared_with": "the fp32 validation probabilities the runs recorded (predictions.csv)",
            "native_bf16_at_export": native_bf16()}


def _split_change(split_dir: Path, run: RunRecord, shared: dict, made: Architectures, *, ap: bool, rule: str,
                  patients: int) -> tuple[float, int]:
    from vcpred.cohort import load_manifest
    from vcpred.imaging import load_prepared  # the store read through its own API (hashes checked)

    recorded = read_predictions(run.path / "predictions.csv", split=run.split)
    recorded = recorded[recorded["set"] == "validation"]
    chosen = sorted(recorded["patient_id"].unique())[:patients]
    by_id = {r.patient_id: r for r in load_manifest(run.manifest, check_files=False).records}
    model = load_split(split_dir.parent, SplitEntry(run.split, split_dir.name), "image", shared,
                       made=made)  # as predict loads it
    to_bf16_weights(model.net)
    rows = []
    with torch.no_grad(), inference_context("bf16"):
        for patient_id in chosen:
            prepared = load_prepared(run.store, patient_id)
            frames = torch.from_numpy(three_channels(prepared.frames))
            clinical = clinical_rows(model, by_id[patient_id], len(frames))
            probabilities = torch.sigmoid(model.net(frames, clinical).float()).numpy()
            rows += [(patient_id, int(o), float(p)) for o, p in zip(prepared.frame_offsets, probabilities)]
    ours = pd.DataFrame(rows, columns=["patient_id", "frame_offset", "bf16"])
    both = recorded.merge(ours, on=["patient_id", "frame_offset"], how="inner")
    fp32 = aggregate(both, ap=ap, rule=rule)["probability"]
    bf16 = aggregate(both.assign(probability=both["bf16"]), ap=ap, rule=rule)["probability"]
    return float((fp32 - bf16).abs().max()), len(fp32)
