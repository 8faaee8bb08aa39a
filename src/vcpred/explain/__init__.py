"""Explanations: attention rollout (ViT), Grad-CAM (CNN), heat maps on the full sagittal slice.

See docs/predict.md.
"""

from vcpred.explain.gradcam import grad_cam, grad_cams
from vcpred.explain.overlay import overlay_figure, overlay_png, paste_map, upsample, zoom_box
from vcpred.explain.rollout import (
    attention_rollout,
    find_vit,
    record_attention,
    rollout_from_attentions,
    vit_layout,
)
from vcpred.explain.maps import explain_frames, model_family

__all__ = [
    "attention_rollout", "explain_frames", "find_vit", "grad_cam", "grad_cams", "model_family", "overlay_figure",
    "overlay_png", "paste_map", "record_attention", "rollout_from_attentions", "upsample", "vit_layout", "zoom_box",
]
