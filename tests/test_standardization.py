"""Standardisation that removes acquisition differences: crops resampled to one pixel spacing (a
store parameter) and histogram standardisation fitted on the training patients (in the model)."""

from __future__ import annotations

import shutil
import types

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from imaging_support import T2_LUMBAR, record_for
from vcpred.cohort import load_manifest, load_splits
from vcpred.errors import ConfigError
from vcpred.imaging import PrepareParams, load_prepared, prepare_patient
from vcpred.imaging.preprocess import ResampleCrop
from vcpred.imaging.store import STORE_FORMAT, STORE_VERSION, record_prepared, save_index, store_params, write_prepared
from vcpred.models import ModelSpec, load_model
from vcpred.models.standardize import HistogramStandardizer, average_mapping, frame_percentiles, map_landmarks
from vcpred.predict import load_bundle
from vcpred.training import TrainConfig, TrainingParams, train_run
from vcpred.training.data import load_frames

pytestmark = pytest.mark.usefixtures("weights_home")
TORCHIO_LANDMARKS = [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12]  # of its 13 percentiles, those its map uses


def images(seed: int, n: int = 5) -> torch.Tensor:
    """[n, 1, 24, 20] frames of different contrast and shape of histogram."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 24, 20, generator=generator)
    return base ** torch.linspace(0.5, 2.0, n).view(n, 1, 1, 1) * torch.linspace(1, 300, n).view(n, 1, 1, 1)


def test_landmarks_and_mapping_match_torchio(tmp_path):
    from torchio.transforms import HistogramStandardization
    from torchio.transforms.preprocessing.intensity.histogram_standardization import _normalize

    frames = images(0)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"{i}.nii.gz")
        nib.save(nib.Nifti1Image(frame[0].numpy()[..., None], np.eye(4)), str(paths[-1]))
    theirs = HistogramStandardization.train(paths, progress=False)[TORCHIO_LANDMARKS]
    ours = average_mapping(frame_percentiles(frames))[0]
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-4)
    new = images(1)
    mapped = map_landmarks(new, ours.view(1, -1))
    full = HistogramStandardization.train(paths, progress=False)
    for frame, mine in zip(new, mapped):
        reference = _normalize(frame.unsqueeze(-1), full, mask=None)[..., 0]
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-4, atol=1e-3)


def test_standardized_frames_share_one_scale_whatever_their_contrast():
    standardizer = HistogramStandardizer(channels=1)
    training = images(0, n=8)
    standardizer.fit(frame_percentiles(training), training)
    out = standardizer(training)
    assert abs(float(out.mean())) < 1e-3 and abs(float(out.std()) - 1) < 1e-3
    other_site = images(2, n=3) ** 1.7 * 5 + 40  # another contrast and range
    per_frame = frame_percentiles(standardizer(other_site))[:, 0]
    np.testing.assert_allclose(per_frame, standardizer.landmarks.expand(3, -1), atol=5e-3)  # onto the standard
    with pytest.raises(RuntimeError, match="never fitted"):
        HistogramStandardizer()(training.expand(-1, 3, -1, -1))


def config(tiny_paths, store, **model) -> TrainConfig:
    manifest, _, splits = tiny_paths
    params = TrainingParams(epochs=1, batch_size=8, lr=1e-3, augment=False, precision="fp32")
    return TrainConfig("hist", manifest, store, splits,
                       ModelSpec(**{"backbone": "resnet_test", "weights": "random", "method": "linear",
                                    "standardize": "histogram", **model}), params)


def copy_with(store, target, patient_ids, change):
    """A copy of the store with these patients' frames changed (index and hashes rewritten)."""
    shutil.copytree(store, target)
    for pid in patient_ids:
        prepared = load_prepared(target, pid)
        write_prepared(target, prepared.__class__(**{**vars(prepared), "frames": change(np.array(prepared.frames))}))
        record_prepared(target, pid)
    return target


def recorded_landmarks(run) -> list:
    return yaml.safe_load((run / "config.yaml").read_text())["histogram_standardization"]["landmarks"]


def test_landmarks_come_from_the_training_patients_only(tiny, tmp_path):
    manifest, store, splits = tiny
    cohort = load_manifest(manifest)
    train_ids, val_ids = load_splits(splits, cohort)[0]
    brighter = copy_with(store, tmp_path / "store-external", cohort.ids("external") + list(val_ids),
                         lambda f: np.sign(f) * np.abs(f) ** 1.5 * 3 + 1)  # another site's contrast
    changed_training = copy_with(store, tmp_path / "store-training", train_ids[:3], lambda f: f ** 3)
    runs = {name: train_run(config(tiny, where), 0, tmp_path / "runs" / name) for name, where in
            (("plain", store), ("external", brighter), ("training", changed_training))}
    landmarks = {name: recorded_landmarks(run) for name, run in runs.items()}
    assert landmarks["external"] == landmarks["plain"]  # validation and external intensities do not count
    assert landmarks["training"] != landmarks["plain"]  # the training patients' do
    recorded = yaml.safe_load((runs["plain"] / "config.yaml").read_text())["histogram_standardization"]
    assert recorded["patients"] == len(train_ids) and recorded["fitted_on"] == "the training patients of this split"
    model = load_model(runs["plain"] / "model")
    np.testing.assert_allclose(model.core.standardizer.landmarks.numpy(), landmarks["plain"], atol=1e-5)


def test_the_bundle_applies_each_split_models_standardization_as_training_did(artefacts):
    bundle = load_bundle(artefacts.exported("vitlinhist", backbone="vit_tiny_test", method="linear",
                                            standardize="histogram"))
    manifest, store, _ = artefacts.tiny_cohort()
    cohort = load_manifest(manifest)
    nets = [m.net for m in bundle.models]
    assert nets[0].backbone is not nets[1].backbone  # per-split landmarks: a backbone pass per split model
    for split_model, entry in zip(bundle.models, bundle.meta.splits):
        trained = load_model(f"{entry.run}/model").core
        assert torch.equal(split_model.net.standardizer.landmarks, trained.standardizer.landmarks)
        table = pd.read_csv(f"{entry.run}/predictions.csv")
        records = [cohort[p] for p in dict.fromkeys(table["patient_id"])]
        frames = load_frames(store, records, ["x"] * len(records), main_only=False, preprocessor=None)
        assert torch.equal(split_model.net.standardizer(frames.frames), trained.standardizer(frames.frames))
        with torch.no_grad():
            probabilities = torch.sigmoid(split_model.net(frames.frames)).numpy()
        mine = pd.DataFrame({"patient_id": frames.patient_ids, "frame_offset": frames.offsets, "mine": probabilities})
        merged = table.merge(mine, on=["patient_id", "frame_offset"])
        assert len(merged) == len(table)
        np.testing.assert_allclose(merged["probability"], merged["mine"], atol=1e-5)


def test_resample_crop_gives_pixels_of_the_asked_spacing():
    crops = np.random.default_rng(0).normal(size=(2, 40, 30)).astype(np.float32)
    out, valid, record = ResampleCrop(spacing_mm=1.25)(crops, np.ones((40, 30), bool), (3.0, 1.0, 1.0))
    assert out.shape == (2, 32, 24) and valid.shape == (32, 24) and valid.all()
    assert record["pixels"] == [32, 24] and record["from_mm"] == [1.0, 1.0]
    with pytest.raises(ConfigError, match="crop spacing"):
        PrepareParams(crop_spacing_mm=0)


def test_crop_spacing_round_trips_through_the_store_and_the_bundle_and_prepares_the_same_frames(tmp_path):
    from vcpred.bundle.export import prepare_params as bundle_prepare_params

    params = PrepareParams(n4=False, size=32, k=1, crop_spacing_mm=1.3)
    assert "crop_spacing_mm" not in PrepareParams().to_dict()  # stores made before it keep their params
    assert PrepareParams.from_dict(params.to_dict()) == params
    record = record_for(T2_LUMBAR)
    prepared = prepare_patient(record, params)
    steps = prepared.provenance["sequences"]["t2"]["steps"]
    resampled = next(s for s in steps if s["step"] == "ResampleCrop")
    assert resampled["spacing_mm"] == 1.3 and [s["step"] for s in steps][-2:] == ["Normalize", "Resize"]
    store = tmp_path / "store"
    store.mkdir()
    save_index(store, {"format": STORE_FORMAT, "version": STORE_VERSION, "params": params.to_dict(), "patients": {}})
    write_prepared(store, prepared)
    record_prepared(store, record.patient_id)
    assert store_params(store)["crop_spacing_mm"] == 1.3
    in_bundle = bundle_prepare_params(types.SimpleNamespace(store=store, path=tmp_path))  # export's copy
    at_prediction = prepare_patient(record, PrepareParams.from_dict(in_bundle))
    np.testing.assert_array_equal(at_prediction.frames, load_prepared(store, record.patient_id).frames)
    without = prepare_patient(record, PrepareParams(n4=False, size=32, k=1))
    assert not np.allclose(without.frames, at_prediction.frames)  # the option changes the frames
