"""BiomedCLIP import and fetch without a hub: a tiny ViT in BiomedCLIP's file layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vcpred.cli import main
from vcpred.errors import WeightsError
from vcpred.models import ModelSpec, create_model, get_backbone
from vcpred.models.hub import fetch_biomedclip, import_biomedclip
from vcpred.models.weights import BIOMEDCLIP_REPO, stored_dir

MEAN, STD = [0.4, 0.41, 0.42], [0.25, 0.26, 0.27]


pytestmark = pytest.mark.usefixtures("weights_home")


def fake_biomedclip(folder: Path) -> dict[str, torch.Tensor]:
    """open_clip_pytorch_model.bin + open_clip_config.json around a tiny ViT image tower."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    trunk = get_backbone("vit_tiny_test").create().state_dict()
    checkpoint = {f"visual.trunk.{k}": v for k, v in trunk.items()}
    checkpoint["visual.head.proj.weight"] = torch.randn(16, 192)         # projection: not the trunk
    checkpoint["text.transformer.embeddings.word_embeddings.weight"] = torch.randn(10, 8)
    checkpoint["logit_scale"] = torch.tensor(4.6)
    torch.save(checkpoint, folder / "open_clip_pytorch_model.bin")
    config = {"model_cfg": {"vision_cfg": {"timm_model_name": "vit_base_patch16_224", "image_size": 224}},
              "preprocess_cfg": {"mean": MEAN, "std": STD}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return trunk


def assert_loaded(trunk: dict[str, torch.Tensor]) -> None:
    built = create_model(ModelSpec(backbone="vit_tiny_test", weights="biomedclip", method="linear"))
    state = built.core.backbone.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trunk.items())
    assert built.weights.mean == tuple(MEAN) and built.weights.std == tuple(STD)
    assert "research use" in built.weights.licence


def test_import_from_local_folder(tmp_path):
    trunk = fake_biomedclip(tmp_path / "download")
    folder = import_biomedclip(tmp_path / "download", backbone="vit_tiny_test")
    meta = json.loads((folder / "weights.json").read_text())
    assert meta["name"] == "biomedclip" and len(meta["sha256"]) == 64 and meta["input_size"] == 224
    assert_loaded(trunk)


def test_fetch_reads_the_hugging_face_cache_offline(tmp_path):
    """The production fetch path (hf_hub_download) with HF_HUB_OFFLINE=1 and a prepared cache."""
    commit = "0" * 40
    repo = tmp_path / "hf" / ("models--" + BIOMEDCLIP_REPO.replace("/", "--"))
    trunk = fake_biomedclip(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    fetch_biomedclip(cache_dir=tmp_path / "hf", backbone="vit_tiny_test")
    assert_loaded(trunk)


def test_fetch_without_cache_or_network_says_how_to_import(tmp_path):
    with pytest.raises(WeightsError, match="vcpred weights import biomedclip"):
        fetch_biomedclip(cache_dir=tmp_path / "empty", backbone="vit_tiny_test")


def test_tampered_weights_are_refused(tmp_path):
    fake_biomedclip(tmp_path / "d")
    folder = import_biomedclip(tmp_path / "d", backbone="vit_tiny_test")
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        create_model(ModelSpec(backbone="vit_tiny_test", weights="biomedclip"))


def test_wrong_architecture_is_refused(tmp_path):
    fake_biomedclip(tmp_path / "d")
    with pytest.raises(WeightsError, match="does not match the backbone"):
        import_biomedclip(tmp_path / "d", backbone="vit_small_patch16_224")
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights"):
        import_biomedclip(tmp_path / "junk.bin")


def test_weights_cli(tmp_path, capsys):
    fake_biomedclip(tmp_path / "d")
    assert main(["weights", "import", "biomedclip", str(tmp_path / "d"), "--backbone", "vit_tiny_test"]) == 0
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "biomedclip" in out and "vit_tiny_test" in out
    assert main(["weights", "fetch", "imagenet"]) == 2
    assert "--backbone" in capsys.readouterr().err
    assert stored_dir("biomedclip", "vit_tiny_test").is_dir()
