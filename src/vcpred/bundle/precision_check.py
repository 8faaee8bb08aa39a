"""At export: how far bf16 moves each split model's validation probabilities (bundle.json
`bf16_check`), the evidence `--precision auto` needs before it predicts in bf16.

Split by split, in order, up to `patients` of the split's validation patients (the first by id) are
read from the run's prepared store (each patient once for the whole check) and scored by the exported
network as vcpred's bf16 path computes them (bf16 Linear/Conv weights under autocast; the main frame
alone when the bundle predicts without AP); their probabilities, combined over frames the way the
bundle predicts (AP and its aggregate, or the main frame), are compared with the fp32 ones the run
recorded in predictions.csv. The largest change of one split model's probability bounds the change of
the ensemble mean too. The first split model whose change reaches the tolerance decides fp32 and ends
the check; the others would not change the decision.

The first split starts with a screen: its first SCREEN_PATIENTS patients. A change that reaches the
tolerance there decides at a fraction of the cost (a larger set of patients can only show a larger
largest change); otherwise its other patients are scored too. The later splits score their patients in
one batch (the emulated forward costs about the same for 2 patients as for 8). Each split model is
loaded once, and only when reached (a screen of every split before any full check loaded all ten even
when the fourth decided: most of the demo ViT's check). `screen` records the first split's screen.

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
    """Split by split, in order, until a split model's change reaches the tolerance, which decides fp32
    (None when patients is 0: not checked, so auto stays fp32)."""
    if patients <= 0:
        return None
    from safetensors.torch import load_file

    shared_file = folder / SHARED_BACKBONE_FILE  # the backbone the split models share, when kept once
    shared = load_file(str(shared_file)) if shared_file.is_file() else {}
    made: Architectures = {}  # as load_bundle: each architecture built once, copied for the other splits
    manifests: dict[str, dict] = {}  # manifest path -> records by id: the split runs share one, checked once
    frames: dict[str, tuple] = {}  # patient id -> (frames scored, their offsets): read once for every split
    screen_patients = min(SCREEN_PATIENTS, patients)
    changes: list[float] = []
    scored, screen = 0, None
    for run, entry in zip(runs, entries):
        model, recorded, by_id, chosen = _split_inputs(folder / entry["dir"], run, shared, made, manifests, patients)

        def change(ids: list[str]) -> float:
            return _split_change(model, recorded, by_id, ids, frames, run=run, ap=ap, rule=rule)

        if screen is None:  # the first split's first patients: decides a clear refusal at a fraction of the cost
            first = change(chosen[:screen_patients])
            screen = {"patients": len(chosen[:screen_patients]), "change": float(first),
                      "decided": not first < BF16_TOLERANCE}
            rest = chosen[screen_patients:] if first < BF16_TOLERANCE else []
            changes.append(max(first, change(rest), key=_nan_largest) if rest else first)
            scored += screen["patients"] + len(rest)
        else:  # one batch: a forward costs about the same for 2 patients as for 8
            changes.append(change(chosen))
            scored += len(chosen)
        if not changes[-1] < BF16_TOLERANCE:  # NaN (nothing measured) stops it too
            break
    largest = max(changes, key=_nan_largest)
    return {"max_probability_change": float(largest), "per_split": [float(c) for c in changes],
            "splits_checked": len(changes), "splits": len(runs),
            "stopped_early": len(changes) < len(runs), "screen": screen,
            "patients": scored, "patients_per_split": patients,
            "tolerance": BF16_TOLERANCE,
            "compared_with": "the fp32 validation probabilities the runs recorded (predictions.csv)",
            "method": METHOD, "native_bf16_at_export": native_bf16()}


def _nan_largest(change: float) -> float:
    """Sort key: NaN (nothing measured) counts as the largest change, so it decides fp32."""
    return math.inf if math.isnan(change) else change


def _split_inputs(split_dir: Path, run: RunRecord, shared: dict, made: Architectures, manifests: dict,
                  patients: int) -> tuple:
    """(the split's network as predict loads it, the fp32 validation predictions its run recorded, the
    manifest's records by patient id, from `manifests` when an earlier split read the same file, the
    first `patients` validation patients by id)."""
    from vcpred.cohort import load_manifest

    recorded = read_predictions(run.path / "predictions.csv", split=run.split)
    recorded = recorded[recorded["set"] == "validation"]
    key = str(Path(run.manifest).resolve())
    if key not in manifests:
        manifests[key] = {r.patient_id: r for r in load_manifest(run.manifest, check_files=False).records}
    model = load_split(split_dir.parent, SplitEntry(run.split, split_dir.name), "image", shared, made=made)
    return model, recorded, manifests[key], sorted(recorded["patient_id"].unique())[:patients]


def _patient_frames(store: str, patient_id: str, ap: bool) -> tuple[torch.Tensor, list[int]]:
    """The frames the bundle predicts from (all with AP; without, the main frame alone: scoring the
    others costs time for nothing) and their offsets."""
    from vcpred.imaging import load_prepared  # the store read through its own API (hashes checked)

    prepared = load_prepared(store, patient_id)
    offsets = [int(offset) for offset in prepared.frame_offsets]
    scored = list(range(len(offsets))) if ap else [offsets.index(0)]
    return torch.from_numpy(three_channels(prepared.frames[scored])), [offsets[i] for i in scored]


def _split_change(model, recorded: pd.DataFrame, by_id: dict, patient_ids: list[str], frames: dict, *,
                  run: RunRecord, ap: bool, rule: str) -> float:
    """The largest change bf16 makes to these patients' probabilities (NaN when there is none)."""
    if not patient_ids:  # nothing to measure: no number, so auto stays fp32
        return float("nan")
    keys, batch, clinical = [], [], []
    for patient_id in patient_ids:
        if patient_id not in frames:
            frames[patient_id] = _patient_frames(run.store, patient_id, ap)
        images, offsets = frames[patient_id]
        batch.append(images)
        clinical.append(clinical_rows(model, by_id[patient_id], len(images)))
        keys += [(patient_id, offset) for offset in offsets]
    with torch.no_grad(), emulated_bf16(model.net) as net:
        logits = net(torch.cat(batch), None if clinical[0] is None else torch.cat(clinical))
    ours = pd.DataFrame(keys, columns=["patient_id", "frame_offset"]).assign(bf16=torch.sigmoid(logits).numpy())
    both = recorded.merge(ours, on=["patient_id", "frame_offset"], how="inner")
    fp32 = aggregate(both, ap=ap, rule=rule)["probability"]
    bf16 = aggregate(both.assign(probability=both["bf16"]), ap=ap, rule=rule)["probability"]
    return float((fp32 - bf16).abs().max())
