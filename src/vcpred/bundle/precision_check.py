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

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vcpred.evaluate.aggregate import aggregate
from vcpred.evaluate.runs import read_run
from vcpred.models import ClinicalPreprocessor
from vcpred.models.precision import BF16_TOLERANCE, inference_context, native_bf16, to_bf16_weights
from vcpred.predict.bundle import build_network
from vcpred.bundle.files import CLINICAL_FILE, SHARED_BACKBONE_FILE, SPEC_FILE, WEIGHTS_FILE
from vcpred.runs import RunRecord

BATCH = 16


def bf16_check(folder: Path, runs: list[RunRecord], entries: list[dict], *, ap: bool, rule: str,
               patients: int) -> dict | None:
    """The check over every split (None when patients is 0: not checked, so auto stays fp32)."""
    if patients <= 0:
        return None
    changes, checked = [], 0
    from safetensors.torch import load_file

    shared_file = folder / SHARED_BACKBONE_FILE  # the backbone the split models share, when kept once
    shared = load_file(str(shared_file)) if shared_file.is_file() else {}
    for run, entry in zip(runs, entries):
        change, count = _split_change(folder / entry["dir"], run, shared, ap=ap, rule=rule, patients=patients)
        changes.append(change)
        checked += count
    return {"max_probability_change": float(max(changes)), "per_split": [float(c) for c in changes],
            "patients": checked, "patients_per_split": patients, "tolerance": BF16_TOLERANCE,
            "compared_with": "the fp32 validation probabilities the runs recorded (predictions.csv)",
            "native_bf16_at_export": native_bf16()}


def _split_change(split_dir: Path, run: RunRecord, shared: dict, *, ap: bool, rule: str,
                  patients: int) -> tuple[float, int]:
    from vcpred.cohort import load_manifest
    from vcpred.training.data import load_frames

    recorded = read_run(run).predictions
    recorded = recorded[recorded["set"] == "validation"]
    chosen = sorted(recorded["patient_id"].unique())[:patients]
    by_id = {r.patient_id: r for r in load_manifest(run.manifest, check_files=False).records}
    records = [by_id[p] for p in chosen]
    spec = json.loads((split_dir / SPEC_FILE).read_text())
    preprocessor = None
    if spec["clinical_features"]:
        clinical = json.loads((split_dir / CLINICAL_FILE).read_text())
        preprocessor = ClinicalPreprocessor.from_dict(clinical["preprocessor"])
    frames = load_frames(run.store, records, ["validation"] * len(records), main_only=False, preprocessor=preprocessor)
    from safetensors.torch import load_file

    state = {**shared, **load_file(str(split_dir / WEIGHTS_FILE))}
    net = to_bf16_weights(build_network(spec["spec"], spec["clinical_features"], state))
    probabilities = []
    with torch.no_grad(), inference_context("bf16"):
        for start in range(0, len(frames), BATCH):
            images = frames.frames[start:start + BATCH]
            clinical = None if frames.clinical is None else frames.clinical[start:start + BATCH]
            probabilities.append(torch.sigmoid(net(images, clinical).float()).numpy())
    ours = pd.DataFrame({"patient_id": frames.patient_ids, "frame_offset": frames.offsets,
                         "bf16": np.concatenate(probabilities)})
    both = recorded.merge(ours, on=["patient_id", "frame_offset"], how="inner")
    fp32 = aggregate(both, ap=ap, rule=rule)["probability"]
    bf16 = aggregate(both.assign(probability=both["bf16"]), ap=ap, rule=rule)["probability"]
    return float((fp32 - bf16).abs().max()), len(fp32)
