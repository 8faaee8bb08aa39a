"""Getting weights onto this machine: `vcpred weights fetch` (hub) and `import` (local files).

BiomedCLIP's image tower is a plain timm ViT-B/16 whose tensors are the `visual.trunk.*` entries
of open_clip's checkpoint; we only need those, so open_clip (and its BERT text tower) is not used.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from vcpred.errors import WeightsError
from vcpred.hashing import sha256_file
from vcpred.models.registry import get_backbone
from vcpred.models.weights import (
    BIOMEDCLIP_FILES, BIOMEDCLIP_LICENCE, BIOMEDCLIP_REPO, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN,
    IMAGENET_STD, WeightsRecord, load_strict, save_stored,
)

TRUNK_PREFIX = "visual.trunk."


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from .safetensors, or from a torch file without unpickling arbitrary objects."""
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe file
        raise WeightsError(f"cannot read weights from {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds no state dict")
    return state


def _biomedclip_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_dir():
        checkpoint, config = path / BIOMEDCLIP_FILES[0], path / BIOMEDCLIP_FILES[1]
        if not checkpoint.is_file():
            raise WeightsError(f"{path} has no {BIOMEDCLIP_FILES[0]}")
        return checkpoint, config if config.is_file() else None
    if not path.is_file():
        raise WeightsError(f"{path} does not exist")
    config = path.with_name(BIOMEDCLIP_FILES[1])
    return path, config if config.is_file() else None


def _clip_normalisation(config: Path | None) -> tuple[tuple, tuple, int]:
    if config is None:
        return CLIP_MEAN, CLIP_STD, 224
    cfg = json.loads(config.read_text())
    pre = cfg.get("preprocess_cfg", {})
    size = cfg.get("model_cfg", {}).get("vision_cfg", {}).get("image_size", 224)
    return tuple(pre.get("mean", CLIP_MEAN)), tuple(pre.get("std", CLIP_STD)), int(size)


def import_biomedclip(path: str | Path, *, backbone: str = "vit_base_patch16_224") -> Path:
    """Extract the image tower from an open_clip BiomedCLIP checkpoint into the weights store.

    `path`: the folder with open_clip_pytorch_model.bin (+ open_clip_config.json), or the .bin.
    `backbone` exists for tests, which build the same file layout around a tiny ViT.
    """
    checkpoint, config = _biomedclip_files(Path(path))
    state = read_checkpoint(checkpoint)
    trunk = {k[len(TRUNK_PREFIX):]: v for k, v in state.items() if k.startswith(TRUNK_PREFIX)}
    if not trunk:
        raise WeightsError(f"{checkpoint} has no '{TRUNK_PREFIX}*' tensors: not a BiomedCLIP checkpoint")
    info = get_backbone(backbone)
    load_strict(info.create(), trunk, str(checkpoint))
    mean, std, size = _clip_normalisation(config)
    record = WeightsRecord("biomedclip", backbone, f"{BIOMEDCLIP_REPO} ({checkpoint.name}, "
                           f"sha256 {sha256_file(checkpoint)[:16]}…)", None, mean, std, size,
                           BIOMEDCLIP_LICENCE)
    return save_stored(trunk, record)


@contextlib.contextmanager
def hub_messages_once():
    """huggingface_hub prints its warnings (each retry when the hub cannot be reached) with its own
    handler and also passes them on to the root logger that vcpred's console writes: every line
    twice. Within the block only its own handler prints them."""
    hub = logging.getLogger("huggingface_hub")  # the library's root logger, which holds its handler
    propagates, hub.propagate = hub.propagate, False
    try:
        yield
    finally:
        hub.propagate = propagates


def fetch_biomedclip(*, cache_dir: str | Path | None = None,
                     backbone: str = "vit_base_patch16_224") -> Path:
    """Download BiomedCLIP with huggingface_hub (or take it from its cache) and import it."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        with hub_messages_once():
            paths = [hf_hub_download(BIOMEDCLIP_REPO, name, cache_dir=cache_dir) for name in BIOMEDCLIP_FILES]
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise WeightsError(f"could not download {BIOMEDCLIP_REPO} ({type(exc).__name__}); on a machine "
                           "without internet copy its files here and run `vcpred weights import "
                           "biomedclip FOLDER`") from None
    return import_biomedclip(Path(paths[0]).parent, backbone=backbone)


def import_imagenet(path: str | Path, *, backbone: str) -> Path:
    """Store a local timm ImageNet checkpoint for a backbone (classifier tensors dropped)."""
    info = get_backbone(backbone)
    module = info.create()
    state = {k: v for k, v in read_checkpoint(Path(path)).items() if k in module.state_dict()}
    load_strict(module, state, str(path))
    record = WeightsRecord("imagenet", backbone, f"local file {Path(path).name}", None,
                           IMAGENET_MEAN, IMAGENET_STD, info.input_size)
    return save_stored(state, record)


def fetch_imagenet(*, backbone: str) -> Path:
    """Download timm's default ImageNet weights for a backbone and store them."""
    import timm

    info = get_backbone(backbone)
    try:
        with hub_messages_once():  # timm downloads with huggingface_hub
            model = timm.create_model(info.timm_name, pretrained=True, num_classes=0, **info.timm_kwargs)
    except Exception as exc:  # hub and network errors come in many types
        raise WeightsError(f"could not download ImageNet weights for {backbone} "
                           f"({type(exc).__name__}: {exc}); copy a timm checkpoint here and run "
                           f"`vcpred weights import imagenet PATH --backbone {backbone}`") from None
    cfg = model.pretrained_cfg
    record = WeightsRecord("imagenet", backbone, f"timm {cfg.get('hf_hub_id') or cfg.get('url')}", None,
                           tuple(cfg["mean"]), tuple(cfg["std"]), int(cfg["input_size"][-1]),
                           str(cfg.get("license", "")))
    return save_stored(model.state_dict(), record)
