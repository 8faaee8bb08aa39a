"""Backbones, pre-trained weights, fine-tuning methods and clinical fusion."""

from vcpred.lazy import lazy_exports

# name -> defining submodule, imported on first use: reading a ModelSpec must not load torch and timm
_EXPORTS = {
    "BACKBONES": "registry",
    "BackboneInfo": "registry",
    "BuiltModel": "factory",
    "ClinicalLogistic": "clinical",
    "ClinicalPreprocessor": "clinical",
    "METHODS": "spec",
    "ModelSpec": "spec",
    "VcpredModel": "network",
    "WeightsRecord": "weights",
    "create_model": "factory",
    "get_backbone": "registry",
    "load_model": "factory",
    "load_pretrained": "weights",
    "merged": "factory",
    "register_backbone": "registry",
    "save_model": "factory",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
