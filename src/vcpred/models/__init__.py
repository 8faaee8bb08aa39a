"""Backbones, pre-trained weights, fine-tuning methods and clinical fusion."""

from vcpred.models.clinical import ClinicalLogistic, ClinicalPreprocessor
from vcpred.models.factory import BuiltModel, create_model, load_model, merged, save_model
from vcpred.models.network import VcpredModel
from vcpred.models.registry import BACKBONES, BackboneInfo, get_backbone, register_backbone
from vcpred.models.spec import METHODS, ModelSpec
from vcpred.models.weights import WeightsRecord, load_pretrained

__all__ = [
    "BACKBONES", "BackboneInfo", "BuiltModel", "ClinicalLogistic", "ClinicalPreprocessor", "METHODS",
    "ModelSpec", "VcpredModel", "WeightsRecord", "create_model", "get_backbone", "load_model",
    "load_pretrained", "merged", "register_backbone", "save_model",
]
