"""Issue 27's "Done when" for the two commands that read a model and a cohort, `predict --manifest` and
`validate`: altering, moving or swapping an input they depend on (the model directory's files, the
manifest, the images) gives the same output or a one-line refusal naming the input; no third outcome.
(export, evaluate and report: tests/test_run_inputs.py.)

Each change is one concrete mutation of a copy of a small cohort and of an exported image model.
The model directory and the manifest must give exactly the baseline's output or exit 2 with one
`error:` line naming the changed path. An image is a patient's own input: its patient is either
scored exactly as before or refused with a reason naming its file, and every other patient's output
is the baseline's. Two patients' image folders swapped are two other inputs under the same names
(the manifest records no digest of them): each patient's output must then be the output of the images
now at its path (the other patient's baseline: nothing is kept from an earlier read)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from predict_support import BODY, T2_LUMBAR
from vcpred.bundle.files import BUNDLE_FILE
from vcpred.cli import main

pytestmark = [pytest.mark.usefixtures("weights_home"), pytest.mark.slow]  # ~50 s, the export aside

CNN = dict(backbone="resnet_test", method="lora")
PATIENTS = {"A": 1, "B": 0, "C": 1}  # id: label


def one_line_error(capsys) -> str:
    """The refusal's `error:` line: one, with no traceback; only a manifest's problems, each on its
    own indented line, may follow it (as `cohort check` lists them)."""
    err = capsys.readouterr().err.rstrip().splitlines()
    errors = [i for i, line in enumerate(err) if line.startswith("error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    assert all(line.startswith("  ") for line in err[errors[0] + 1:]), err
    return err[errors[0]]


def names(err: str, path: Path) -> bool:
    """Whether the message names the path: whole, or as a folder and the path inside it
    ('model directory MODEL: split-01/model.safetensors changed ...')."""
    return str(path) in err or any(str(folder) in err and str(path.relative_to(folder)) in err
                                   for folder in list(path.parents)[:2])


def write_cohort(folder: Path) -> Path:
    """Three patients, each its own image folder (the real T2 with its own noise: its own bytes and
    probability), one ROI for all (so swapped images give the other patient's probability exactly)."""
    source = nib.load(str(T2_LUMBAR))
    data = np.asarray(source.dataobj, dtype=np.float32)
    rows = ["patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,label"]
    for seed, (pid, label) in enumerate(PATIENTS.items()):
        noisy = data + np.random.default_rng(seed).normal(0, 0.05 * float(data.std()), data.shape).astype(np.float32)
        (folder / "images" / pid).mkdir(parents=True)
        nib.save(nib.Nifti1Image(noisy, source.affine, source.header), str(folder / "images" / pid / "t2.nii.gz"))
        rows.append(f"{pid},external,images/{pid}/t2.nii.gz,{BODY.slice},{BODY.row_min},{BODY.col_min},"
                    f"{BODY.row_max},{BODY.col_max},{label}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def outputs(command: str, model: Path, manifest: Path, out: Path) -> tuple[int, dict | None]:
    """Exit status and {patient: ('p', probability) | ('refused', reason)} of one run."""
    if command == "predict":
        code = main(["--quiet", "predict", "--model", str(model), "--manifest", str(manifest), "--precision", "fp32",
                     "--out", str(out)])
        if code:
            return code, None
        table = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
        return code, {r.patient_id: ("refused", r.error) if r.error else ("p", r.probability)
                      for r in table.itertuples()}
    code = main(["--quiet", "validate", "--model", str(model), "--manifest", str(manifest), "--out", str(out)])
    if code:
        return code, None
    scored = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False)
    excluded = pd.read_csv(out / "excluded.csv", dtype=str, keep_default_na=False)
    return code, {**{r.patient_id: ("p", r.probability) for r in scored.itertuples()},
                  **{r.patient_id: ("refused", r.reason) for r in excluded.itertuples()}}


@pytest.fixture(scope="module")
def pristine(artefacts, tmp_path_factory):
    """work/model (a copy of the exported CNN) and work/cohort; the baseline outputs of both commands."""
    work = tmp_path_factory.mktemp("inputs") / "work"
    shutil.copytree(artefacts.exported("resnetlora", **CNN), work / "model")
    manifest = write_cohort(work / "cohort")
    baselines = {}
    for command in ("predict", "validate"):
        code, baselines[command] = outputs(command, work / "model", manifest, work.parent / f"baseline-{command}")
        assert code == 0 and all(kind == "p" for kind, _ in baselines[command].values()), baselines[command]
    assert len({value for _, value in baselines["predict"].values()}) == 3  # three images, three probabilities
    return work, baselines


def _weights(model: Path) -> list[Path]:
    return sorted(p for p in model.rglob("*.safetensors"))


def _flip(path: Path, at: float = 0.5) -> Path:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _swap(a: Path, b: Path) -> Path:
    a.rename(a.with_name("swapping"))
    b.rename(a)
    a.with_name("swapping").rename(b)
    return a


# each: (work folder) -> the changed path; the model and manifest the command is then given
MODEL_CHANGES = {
    "truncate a weights file": lambda w: _truncate(_weights(w / "model")[0]),
    "flip a byte of a weights file": lambda w: _flip(_weights(w / "model")[-1]),
    "flip a byte of bundle.json": lambda w: _flip(w / "model" / BUNDLE_FILE, 0.9),
    "swap two split models' weights": lambda w: _swap(*_weights(w / "model")[:2]),
    "move the model folder": lambda w: (w / "model").rename(w / "model-moved") and w / "model",
}
MANIFEST_CHANGES = {
    "re-save the manifest with CRLF": lambda w: _crlf(w / "cohort" / "manifest.csv"),
    "truncate the manifest": lambda w: _truncate(w / "cohort" / "manifest.csv"),
    "move the manifest": lambda w: (w / "cohort" / "manifest.csv").rename(w / "cohort" / "moved.csv") and
    w / "cohort" / "manifest.csv",
}
IMAGE_CHANGES = {"B": _truncate, "C": _flip}  # patient: what is done to its image (A's is left as it was)


def _crlf(path: Path) -> Path:
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    return path


def _copy(pristine, tmp_path) -> Path:
    work, _ = pristine
    return Path(shutil.copytree(work, tmp_path / "work"))


@pytest.mark.parametrize("command", ["predict", "validate"])
@pytest.mark.parametrize("change", sorted({**MODEL_CHANGES, **MANIFEST_CHANGES}))
def test_a_changed_model_or_manifest_gives_the_same_output_or_a_refusal_naming_it(pristine, tmp_path, capsys,
                                                                                  command, change):
    work, baselines = pristine
    work = _copy(pristine, tmp_path)
    path = {**MODEL_CHANGES, **MANIFEST_CHANGES}[change](work)
    capsys.readouterr()
    code, output = outputs(command, work / "model", work / "cohort" / "manifest.csv", tmp_path / "out")
    if code == 0:
        assert output == baselines[command], (command, change)
    else:
        assert code == 2, (command, change, code)
        err = one_line_error(capsys)
        assert names(err, path), (command, change, err)


@pytest.mark.parametrize("command", ["predict", "validate"])
def test_a_changed_image_is_its_patients_refusal_or_the_same_output(pristine, tmp_path, command):
    """One image truncated, another with a byte flipped (in its compressed data), one left as it was."""
    _, baselines = pristine
    work = _copy(pristine, tmp_path)
    for pid, change in IMAGE_CHANGES.items():
        change(work / "cohort" / "images" / pid / "t2.nii.gz")
    code, output = outputs(command, work / "model", work / "cohort" / "manifest.csv", tmp_path / "out")
    assert code == 0 and output["A"] == baselines[command]["A"], command
    for pid in IMAGE_CHANGES:
        kind, value = output[pid]
        assert (kind, value) == baselines[command][pid] or (
            kind == "refused" and f"images/{pid}/t2.nii.gz" in value), (command, pid, value)


@pytest.mark.parametrize("command", ["predict", "validate"])
def test_swapped_image_folders_give_each_patient_the_output_of_the_images_now_there(pristine, tmp_path, command):
    _, baselines = pristine
    work = _copy(pristine, tmp_path)
    _swap(work / "cohort" / "images" / "A", work / "cohort" / "images" / "B")
    code, output = outputs(command, work / "model", work / "cohort" / "manifest.csv", tmp_path / "out")
    baseline = baselines[command]
    assert code == 0 and output == {"A": baseline["B"], "B": baseline["A"], "C": baseline["C"]}


def test_an_image_with_a_flipped_byte_is_read_as_it_was_or_refused(tmp_path):
    """The reader both commands share: a .nii.gz with one byte flipped in its compressed data must give
    the same pixels or an error naming the file. The real T2 with its middle byte flipped was read
    without error, with 919,696 voxels changed (gzip itself says 'CRC check failed'); the reader now
    checks the gzip stream (tests/test_nifti_gzip_check.py)."""
    from vcpred.errors import ImageReadError
    from vcpred.imaging import read_volume

    original = read_volume(T2_LUMBAR).array
    flipped = _flip(Path(shutil.copyfile(T2_LUMBAR, tmp_path / "t2.nii.gz")))
    try:
        changed = read_volume(flipped).array
    except ImageReadError as exc:
        assert str(flipped) in str(exc)
        return
    assert np.array_equal(changed, original)
