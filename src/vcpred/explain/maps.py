"""One entry point for heat maps: rollout for ViT backbones, Grad-CAM for CNNs; study figures.

`explain_run` draws the study's attention-rollout (or Grad-CAM) figures for patients of a
prepared store with any trained run dir.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from vcpred.explain.gradcam import grad_cam
from vcpred.explain.overlay import overlay_png, paste_map
from vcpred.explain.rollout import attention_rollout, find_vit


def model_family(model: nn.Module) -> str:
    """'vit' when model holds a timm VisionTransformer, else 'cnn'."""
    try:
        find_vit(model)
        return "vit"
    except TypeError:
        return "cnn"


def method_text(family: str | None) -> str:
    """How reports and prediction.json name the heat-map method of a model family ('vit' or 'cnn')."""
    return ("attention rollout (class token, heads averaged)" if family == "vit"
            else "Grad-CAM on the last convolutional stage")


def explain_frames(model: nn.Module, images: torch.Tensor, clinical: torch.Tensor | None = None, *,
                   head_fusion: str = "mean", discard_ratio: float = 0.0) -> np.ndarray:
    """Maps [B, h, w] in [0, 1] for images [B, 3, H, W]: rollout (ViT) or Grad-CAM (CNN)."""
    if model_family(model) == "vit":
        return attention_rollout(model, images, head_fusion=head_fusion, discard_ratio=discard_ratio)
    return grad_cam(model, images, clinical)


def full_slice_map(maps: np.ndarray, crop_box, image_shape: tuple[int, int]) -> np.ndarray:
    """The mean over models of maps [M, h, w] pasted onto the slice: [R, C], NaN outside the crop."""
    pasted = np.stack([paste_map(m, crop_box, image_shape) for m in np.asarray(maps)])
    mean = pasted.mean(axis=0)
    peak = np.nanmax(mean) if np.isfinite(mean).any() else 0.0
    return mean / peak if peak > 0 else mean


def explain_run(run_dir: str | Path, store: str | Path, patient_ids: list[str], out: str | Path, *,
                head_fusion: str = "mean", discard_ratio: float = 0.0) -> list[Path]:
    """OUT/<patient>.png: the run's model's map on each prepared patient's main frame."""
    from vcpred.cohort import load_manifest
    from vcpred.imaging import load_prepared
    from vcpred.imaging.store import safe_name
    from vcpred.models import ClinicalPreprocessor, load_model
    from vcpred.runs import read_record
    from vcpred.models.inputs import three_channels

    run_dir, out = Path(run_dir), Path(out)
    run = read_record(run_dir)
    built = load_model(run_dir / "model")
    preprocessor = None
    if (run_dir / "model" / "clinical.json").is_file():
        saved = json.loads((run_dir / "model" / "clinical.json").read_text())
        preprocessor = ClinicalPreprocessor.from_dict(saved["preprocessor"])
        cohort = load_manifest(run.manifest)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for pid in patient_ids:
        prepared = load_prepared(store, pid)
        main = three_channels(prepared.frames)[prepared.frame_offsets == 0]
        clinical = torch.from_numpy(preprocessor.transform([cohort[pid]])) if preprocessor else None
        maps = explain_frames(built.net, torch.from_numpy(main), clinical, head_fusion=head_fusion,
                              discard_ratio=discard_ratio)
        heat = full_slice_map(maps, prepared.crop_box, prepared.main_slice.shape)
        path = out / f"{safe_name(pid)}.png"
        overlay_png(prepared.main_slice, heat, prepared.roi_box, prepared.crop_box, path=path,
                    spacing=prepared.spacing[1:], title=f"{pid}: {run.configuration} split {run.split}")
        written.append(path)
    return written
