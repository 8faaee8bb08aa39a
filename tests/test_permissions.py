"""What vcpred writes gets the modes a plain mkdir/open gives under the user's umask (issue 27): tempfile's
private 0700/0600 and safetensors' 0600 kept an exported model from a colleague or a service account."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from vcpred.hashing import atomic_write
from vcpred.output_folder import replacing

UMASKS = [0o022, 0o077, 0o002]


@pytest.fixture(params=UMASKS, ids=lambda mask: f"umask{mask:03o}")
def umask(request) -> int:
    earlier = os.umask(request.param)
    yield request.param
    os.umask(earlier)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_an_output_folder_and_everything_in_it_get_the_umasks_modes(tmp_path, umask):
    out = tmp_path / "model"
    with replacing(out, kind="model") as folder:
        (folder / "bundle.json").write_text("{}")
        (folder / "weights").mkdir()
        save_file({"w": torch.zeros(2)}, str(folder / "weights" / "model.safetensors"))  # 0600 by itself

    assert mode(out) == 0o777 & ~umask
    assert mode(out / "weights") == 0o777 & ~umask
    assert mode(out / "bundle.json") == 0o666 & ~umask
    assert mode(out / "weights" / "model.safetensors") == 0o666 & ~umask


def test_a_replaced_output_folder_gets_the_umasks_modes_too(tmp_path, umask):
    out = tmp_path / "model"
    for _ in range(2):  # the second swaps in over the first
        with replacing(out, kind="model", force=True) as folder:
            (folder / "bundle.json").write_text("{}")
    assert mode(out) == 0o777 & ~umask and mode(out / "bundle.json") == 0o666 & ~umask


def test_a_file_written_atomically_gets_the_umasks_mode(tmp_path, umask):
    path = tmp_path / "index.json"
    atomic_write(path, lambda temporary: temporary.write_text("{}"))
    assert mode(path) == 0o666 & ~umask


def test_a_writer_that_sets_its_own_mode_keeps_it(tmp_path, umask):
    # annotate rewrites the user's manifest with the manifest's own mode
    path = tmp_path / "manifest.csv"
    atomic_write(path, lambda temporary: (temporary.write_text("x"), os.chmod(temporary, 0o640)))
    assert mode(path) == 0o640


def test_stored_pretrained_weights_get_the_umasks_mode(tmp_path, monkeypatch, umask):
    from vcpred.models.weights import WeightsRecord, save_stored

    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))
    record = WeightsRecord(name="imagenet", backbone="resnet_test", source="test", sha256=None, mean=(0.5,),
                           std=(0.5,), input_size=32)
    folder = save_stored({"w": torch.zeros(2)}, record)
    assert mode(folder / "model.safetensors") == 0o666 & ~umask
