"""Issue 17: prediction precision (fp32, bf16, auto with the bundle's bf16 check), one backbone pass
for split models that share a backbone (linear probes), and batch prediction that prepares the next
patient while the current one runs. Each precision path is tested explicitly, whatever this CPU has."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from predict_support import BODY, T2_LUMBAR
from vcpred.cli import main
from vcpred.errors import ConfigError
from vcpred.explain import find_vit, grad_cam, grad_cams, record_attention
from vcpred.imaging import load_prepared
from vcpred.models import ModelSpec, create_model, precision
from vcpred.models.bf16_emulation import emulated_bf16
from vcpred.models.inputs import three_channels
from vcpred.bundle import export_configuration
from vcpred.predict import batch, load_bundle, make_record, predict_patient
from vcpred.predict.predict import backbone_groups

CNN = dict(backbone="resnet_test", method="lora")
VIT_LINEAR = dict(backbone="vit_tiny_test", method="linear")
PASSED = {"max_probability_change": 4e-4, "patients": 16, "tolerance": 1e-3}


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def record():
    return make_record({"t2": T2_LUMBAR}, BODY.slice, BODY.box, {})


def test_auto_chooses_bf16_only_with_native_bf16_and_a_passed_check():
    assert precision.choose("fp32", PASSED, native=True) == ("fp32", "asked for")
    assert precision.choose("bf16", None, native=False) == ("bf16", "asked for")  # asked: emulated, but done
    chosen, why = precision.choose("auto", PASSED, native=True)
    assert chosen == "bf16" and "4.0e-04" in why and "16 patients" in why
    assert precision.choose("auto", PASSED, native=False) == ("fp32", "auto: this CPU has no native bf16")
    assert precision.choose("auto", None, native=True)[0] == "fp32"
    failed = {**PASSED, "max_probability_change": 2e-3}
    chosen, why = precision.choose("auto", failed, native=True)
    assert chosen == "fp32" and why == "auto: bf16 changed a validation probability by 2.0e-03 at export, not below 0.001"
    assert precision.choose("auto", {**PASSED, "max_probability_change": None}, native=True)[0] == "fp32"
    with pytest.raises(ConfigError, match="fp32, bf16, auto"):
        precision.choose("fp16", PASSED)


def test_the_export_records_a_bf16_check_that_is_recomputed_here(artefacts):
    model = artefacts.exported("resnetlora", **CNN)
    check = json.loads((model / "bundle.json").read_text())["bf16_check"]
    assert check["tolerance"] == 1e-3 and check["patients_per_split"] == 8 and len(check["per_split"]) == 2
    assert check["max_probability_change"] == max(check["per_split"])
    assert check["method"].startswith("fp32 emulation")
    # independently: split 0's network, its validation patients' frames from the store, AP mean over
    # frames, against the fp32 probabilities the run wrote; bf16 both emulated (what the export
    # records) and by torch's bf16 kernels (what predict runs: the same size of change)
    runs = artefacts.trained_runs("resnetlora", **CNN)
    recorded = pd.read_csv(runs / "resnetlora" / "split-00" / "predictions.csv")
    recorded = recorded[recorded["set"] == "validation"]
    patients = sorted(recorded["patient_id"].unique())[:8]
    net = load_bundle(model, precision="bf16").models[0].net
    assert net.head[1].weight.dtype == torch.bfloat16
    fp32_net = load_bundle(model, precision="fp32").models[0].net
    _, store, _ = artefacts.tiny_cohort()
    prepared = [load_prepared(store, patient) for patient in patients]
    frames = torch.from_numpy(np.concatenate([three_channels(p.frames) for p in prepared]))  # one batch, as export
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            kernels = torch.sigmoid(net(frames).float()).numpy()
        with emulated_bf16(fp32_net) as same_net:
            logits = same_net(frames)  # stands for bf16 while inside: turned into probabilities after
        emulated = torch.sigmoid(logits).numpy()
    changes = {"emulated": [], "kernels": []}
    for index, (patient, one) in enumerate(zip(patients, prepared)):
        rows = slice(index * len(one.frame_offsets), (index + 1) * len(one.frame_offsets))
        theirs = recorded[recorded["patient_id"] == patient].set_index("frame_offset")["probability"]
        theirs = theirs.loc[list(one.frame_offsets)].mean()
        changes["emulated"].append(abs(emulated[rows].mean() - theirs))
        changes["kernels"].append(abs(kernels[rows].mean() - theirs))
    assert check["patients"] == 2 * len(patients)
    assert check["per_split"][0] == pytest.approx(max(changes["emulated"]), abs=1e-7)
    # two draws of bf16's rounding noise (batching frames otherwise alone moves this maximum by up to 2x)
    assert 1 / 3 < max(changes["emulated"]) / max(changes["kernels"]) < 3


def test_without_ap_the_check_scores_the_main_frames_alone(artefacts, tmp_path, monkeypatch):
    """A bundle without AP predicts from each patient's main frame: the check scores those alone (an
    export of the demo's ViT spent most of its time in the others) and its number is recomputed here."""
    from vcpred.bundle import precision_check

    runs = artefacts.trained_runs("resnetlora", **CNN)
    batches = []
    real_channels = precision_check.three_channels
    monkeypatch.setattr(precision_check, "three_channels", lambda f: batches.append(len(f)) or real_channels(f))
    model = export_configuration(runs, "resnetlora", tmp_path / "model", ap=False)
    check = json.loads((model / "bundle.json").read_text())["bf16_check"]
    assert batches and set(batches) == {1}  # one frame per patient read, in every pass
    assert len(batches) == check["patients"]  # each patient read once for the whole check

    recorded = pd.read_csv(runs / "resnetlora" / "split-00" / "predictions.csv")
    main = recorded[(recorded["set"] == "validation") & (recorded["frame_offset"] == 0)]
    patients = sorted(main["patient_id"])[:check["patients_per_split"]]
    _, store, _ = artefacts.tiny_cohort()
    frames = []
    for patient in patients:
        prepared = load_prepared(store, patient)
        frames.append(three_channels(prepared.frames[list(prepared.frame_offsets).index(0)][None]))
    fp32_net = load_bundle(model, precision="fp32").models[0].net
    with torch.no_grad(), emulated_bf16(fp32_net) as same_net:
        logits = same_net(torch.from_numpy(np.concatenate(frames)))
    emulated = torch.sigmoid(logits).numpy()
    theirs = main.set_index("patient_id").loc[patients, "probability"].to_numpy()
    assert check["per_split"][0] == pytest.approx(float(np.abs(emulated - theirs).max()), abs=1e-7)


def test_the_split_models_manifest_is_read_once_for_the_whole_check(artefacts, monkeypatch):
    """Every split run names the same manifest: the check reads (and checks) it once, not once per split,
    and measures what export recorded."""
    import vcpred.cohort
    from vcpred.bundle import precision_check
    from vcpred.bundle.export import find_runs

    model = artefacts.exported("resnetlora", **CNN)
    meta = json.loads((model / "bundle.json").read_text())
    runs = find_runs(artefacts.trained_runs("resnetlora", **CNN), "resnetlora")
    reads = []
    real_load = vcpred.cohort.load_manifest
    monkeypatch.setattr(vcpred.cohort, "load_manifest", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    check = precision_check.bf16_check(model, runs, meta["splits"], ap=meta["ap"], rule=meta["aggregate"], patients=8)
    assert len(runs) == 2 and len(reads) == 1
    assert check["per_split"] == pytest.approx(meta["bf16_check"]["per_split"], abs=1e-9)


def test_the_check_stops_at_the_first_split_model_bf16_moves_too_far(artefacts, tmp_path, monkeypatch):
    from vcpred.bundle import precision_check

    runs = artefacts.trained_runs("resnetlora", **CNN)
    full = json.loads((artefacts.exported("resnetlora", **CNN) / "bundle.json").read_text())["bf16_check"]
    assert full["splits_checked"] == full["splits"] == 2 and not full["stopped_early"]
    assert full["screen"]["patients"] == 2 and not full["screen"]["decided"]  # then the full check ran
    assert full["patients_per_split"] == 8
    # split 0's screen (its first 2 validation patients) reaches the tolerance: split 1 and the full check
    # need not run, and the decision is fp32
    tolerance = full["screen"]["change"] / 2
    monkeypatch.setattr(precision_check, "BF16_TOLERANCE", tolerance)
    model = export_configuration(runs, "resnetlora", tmp_path / "model")
    check = json.loads((model / "bundle.json").read_text())["bf16_check"]
    assert check["per_split"] == [pytest.approx(full["screen"]["change"], abs=1e-9)] and check["stopped_early"]
    assert (check["splits_checked"], check["splits"], check["tolerance"]) == (1, 2, tolerance)
    assert check["screen"]["decided"] and (check["patients"], check["patients_per_split"]) == (2, 8)
    assert check["max_probability_change"] == check["per_split"][0]
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    assert load_bundle(model, precision="auto").precision == "fp32"


@pytest.mark.parametrize(("screen", "rest", "full", "changes", "decided", "patients"), [
    (1e-4, 3e-4, 5e-3, [3e-4, 5e-3], False, 16),  # a change only split 1 shows decides fp32
    (1e-4, 3e-4, 4e-4, [3e-4, 4e-4], False, 16),  # every split passes: bf16 allowed on all 16 patients
    (1e-4, 2e-3, 4e-4, [2e-3], False, 8),         # split 0's other patients decide: split 1 never loaded
    (2e-3, 3e-4, 4e-4, [2e-3], True, 2),          # split 0's screen decides: nothing else scored
])
def test_split_by_split_the_screen_decides_only_a_refusal(tmp_path, monkeypatch, screen, rest, full, changes,
                                                         decided, patients):
    """Split 0: the screen (its first 2 patients), then its other 6 unless the screen reached the
    tolerance; split 1: its 8 patients in one batch; the first split model that reaches it ends the check."""
    from vcpred.bundle import precision_check

    ids = [f"p{i}" for i in range(8)]
    scored = []

    def change(model, recorded, by_id, patient_ids, frames, *, run, ap, rule):
        scored.append((run, len(patient_ids)))
        return {(0, 2): screen, (0, 6): rest, (1, 8): full}[run, len(patient_ids)]

    reads = []
    monkeypatch.setattr(precision_check, "_split_inputs",
                        lambda split_dir, *a: reads.append(split_dir) or (None, None, None, ids))
    monkeypatch.setattr(precision_check, "_split_change", change)
    check = precision_check.bf16_check(tmp_path, [0, 1], [{"dir": "a"}, {"dir": "b"}], ap=True, rule="mean",
                                       patients=8)
    assert check["per_split"] == changes and check["max_probability_change"] == max(changes)
    assert check["screen"] == {"patients": 2, "change": screen, "decided": decided}
    assert check["patients"] == patients == sum(n for _, n in scored)
    assert check["stopped_early"] == (len(changes) < 2)
    assert len(reads) == len(set(reads)) == len(changes)  # each split model loaded once, and only when reached


def test_each_precision_path_predicts_and_says_which_it_used(artefacts, monkeypatch):
    model = artefacts.exported("resnetlora", **CNN)
    check = json.loads((model / "bundle.json").read_text())["bf16_check"]
    results = {p: predict_patient(load_bundle(model, precision=p), record()).result for p in ("fp32", "bf16")}
    assert {p: r["precision"] for p, r in results.items()} == {"fp32": "fp32", "bf16": "bf16"}
    assert abs(results["fp32"]["probability"] - results["bf16"]["probability"]) < 0.05
    monkeypatch.setattr(precision, "native_bf16", lambda: False)  # a CPU without native bf16
    auto = load_bundle(model, precision="auto")
    assert (auto.precision, auto.precision_reason) == ("fp32", "auto: this CPU has no native bf16")
    assert predict_patient(auto, record()).result["probability"] == results["fp32"]["probability"]
    monkeypatch.setattr(precision, "native_bf16", lambda: True)  # a CPU with it: the recorded check decides
    auto = load_bundle(model, precision="auto")
    assert auto.precision == ("bf16" if check["max_probability_change"] < 1e-3 else "fp32")


def test_auto_without_a_recorded_check_predicts_in_fp32(artefacts, tmp_path, monkeypatch):
    runs = artefacts.trained_runs("resnetlora", **CNN)
    model = export_configuration(runs, "resnetlora", tmp_path / "model", bf16_check_patients=0)
    assert json.loads((model / "bundle.json").read_text())["bf16_check"] is None
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    bundle = load_bundle(model, precision="auto")
    assert bundle.precision == "fp32" and "records no bf16 check" in bundle.precision_reason


def test_the_predict_command_writes_the_precision_it_used(artefacts, tmp_path, monkeypatch):
    model = artefacts.exported("resnetlora", **CNN)
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert main(["--quiet", "predict", "--model", str(model), "--image-t2", str(T2_LUMBAR), "--roi-slice",
                 str(BODY.slice), "--roi-box", ",".join(map(str, BODY.box)), "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert result["precision"] == "fp32" and result["precision_reason"] == "auto: this CPU has no native bf16"


@pytest.mark.parametrize("chosen", ["fp32", "bf16"])
def test_linear_probe_split_models_run_their_shared_backbone_once(artefacts, chosen):
    bundle = load_bundle(artefacts.exported("vitlin", **VIT_LINEAR), precision=chosen)
    nets = [m.net for m in bundle.models]
    assert len(nets) == 2 and nets[1].backbone is nets[0].backbone and len(backbone_groups(bundle.models)) == 1
    calls = []
    handle = nets[0].backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        prediction = predict_patient(bundle, record())
    finally:
        handle.remove()
    assert len(calls) == 1  # one pass over the 3 frames serves both heads, with the attention for rollout
    frames = torch.from_numpy(three_channels(prediction.prepared.frames))
    for net, entry in zip(nets, prediction.result["per_model"]):  # each model on its own gives the same
        with torch.no_grad(), precision.inference_context(chosen), record_attention(find_vit(net)):
            alone = torch.sigmoid(net(frames).float()).numpy()  # the same (explicit) attention path as predict
        np.testing.assert_allclose(entry["frames"], alone, atol=1e-6)
    assert prediction.result["heatmap"]["averaged_over_models"] == 2


def test_a_linear_probe_bundle_keeps_its_backbone_once(artefacts, tmp_path, capsys):
    from safetensors.torch import load_file

    model = artefacts.exported("vitlin", **VIT_LINEAR)
    meta = json.loads((model / "bundle.json").read_text())
    assert meta["version"] == 2 and meta["shared_backbone"] == "backbone.safetensors"
    assert "backbone.safetensors" in meta["files"]
    backbone = load_file(str(model / "backbone.safetensors"))
    assert backbone and all(k.startswith("backbone.") for k in backbone)
    for entry in meta["splits"]:
        assert not any(k.startswith("backbone.") for k in load_file(str(model / entry["dir"] / "model.safetensors")))
    lora = json.loads((artefacts.exported("resnetlora", **CNN) / "bundle.json").read_text())
    assert lora["version"] == 1 and lora["shared_backbone"] is None  # own backbones: readable by older vcpreds
    copy = tmp_path / "copy"  # an altered shared backbone is refused like any other file
    shutil.copytree(model, copy)
    (copy / "backbone.safetensors").write_bytes((copy / "backbone.safetensors").read_bytes()[:-8] + b"\0" * 8)
    assert main(["predict", "--model", str(copy), "--image-t2", str(T2_LUMBAR), "--roi-slice", str(BODY.slice),
                 "--roi-box", ",".join(map(str, BODY.box)), "--out", str(tmp_path / "out")]) == 2
    assert "backbone.safetensors changed since export" in capsys.readouterr().err


def test_models_with_their_own_backbones_are_not_shared(artefacts):
    bundle = load_bundle(artefacts.exported("resnetlora", **CNN))
    assert len(backbone_groups(bundle.models)) == 2  # LoRA: each split changed its backbone


def test_the_predict_console_script_exits_at_once_with_its_outputs_written_and_said(artefacts, tmp_path):
    """`vcpred predict` ends without the interpreter's teardown (vcpred.cli.run): everything it wrote
    and printed is there, and its exit code is the command's, on success and on a user error."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "vcpred", "predict", "--model", str(artefacts.exported("vitlin", **VIT_LINEAR)),
               "--image-t2", str(T2_LUMBAR), "--roi-slice", str(BODY.slice), "--roi-box", ",".join(map(str, BODY.box)),
               "--precision", "fp32"]
    done = subprocess.run([*command, "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(f"wrote {tmp_path / 'out'}")  # the last line, flushed before the exit
    result = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert 0 <= result["probability"] <= 1 and (tmp_path / "out" / "report.html").stat().st_size > 0
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("not predict's")
    refused = subprocess.run([*command, "--out", str(tmp_path / "theirs")], capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")


def test_split_networks_copied_from_one_architecture_hold_their_own_tensors(artefacts):
    """load_bundle builds the architecture once per spec and copies it for the other splits; each
    copy is a network of its own that holds exactly its split's exported tensors."""
    from safetensors.torch import load_file

    model = artefacts.exported("resnetlora", **CNN)
    bundle = load_bundle(model)
    first, second = (m.net for m in bundle.models)
    assert first is not second and not set(map(id, first.parameters())) & set(map(id, second.parameters()))
    for split_model, entry in zip(bundle.models, bundle.meta.splits):
        saved, held = load_file(str(model / entry.dir / "model.safetensors")), split_model.net.state_dict()
        assert saved.keys() == held.keys() and all(torch.equal(saved[k], held[k]) for k in saved)
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_grad_cams_of_heads_on_one_backbone_equal_each_model_alone():
    first = create_model(ModelSpec(backbone="resnet_test", weights="random", method="full", seed=0)).net.eval()
    second = create_model(ModelSpec(backbone="resnet_test", weights="random", method="full", seed=1)).net.eval()
    second.backbone = first.backbone  # a linear probe: one backbone, another head
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    together = grad_cams([first, second], images, [None, None])
    for alone, shared in zip((grad_cam(first, images), grad_cam(second, images)), together):
        np.testing.assert_allclose(shared, alone, atol=1e-6)
    assert not np.allclose(together[0], together[1])  # different heads, different maps


@pytest.mark.parametrize("ahead", [True, False])
def test_batch_prediction_equals_one_patient_at_a_time(artefacts, tmp_path, monkeypatch, ahead):
    monkeypatch.setattr(batch, "spare_core", lambda: ahead)  # each path, whatever this machine's cores
    model = artefacts.exported("resnetlora", **CNN)
    box = ",".join(map(str, BODY.box))
    header = "patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label"
    rows = [f"P{i},external,{T2_LUMBAR},{BODY.slice},{box},{i % 2}" for i in range(3)]
    rows.insert(1, f"BAD,external,{T2_LUMBAR},{BODY.slice},400,400,420,430,0")  # ROI outside: its own error
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    assert main(["--quiet", "predict", "--model", str(model), "--manifest", str(manifest), "--precision", "fp32",
                 "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False).set_index("patient_id")
    assert list(table.index) == ["P0", "BAD", "P1", "P2"] and "outside" in table.loc["BAD", "error"]
    alone = predict_patient(load_bundle(model, precision="fp32"), record()).result["probability"]
    for patient in ("P0", "P1", "P2"):
        assert table.loc[patient, "error"] == ""
        assert float(table.loc[patient, "probability"]) == pytest.approx(alone, abs=1e-5)  # CSV keeps 6 digits
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["precision"] == "fp32" and summary["failed"] == 1
