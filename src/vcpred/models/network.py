"""VcpredModel: timm feature extractor + input normalisation + optional clinical MLP + head."""

from __future__ import annotations

import torch
import torch.nn as nn

from vcpred.models.standardize import HistogramStandardizer


class ClinicalMLP(nn.Module):
    def __init__(self, in_features: int, hidden: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class VcpredModel(nn.Module):
    """images [B, 3, H, W] (+ clinical [B, D]) -> one logit per image [B].

    The weights' mean/std are buffers, so one prepared store (frames in [0, 1]) serves every
    backbone; with z-scored frames they are 0 and 1. `standardizer` (optional): histogram
    standardisation fitted on the training frames (vcpred.models.standardize), applied first.
    """

    def __init__(self, backbone: nn.Module, mean: tuple, std: tuple, *, clinical_features: int = 0,
                 clinical_hidden: int = 32, dropout: float = 0.2, standardize: bool = False):
        super().__init__()
        self.backbone = backbone
        self.standardizer = HistogramStandardizer() if standardize else None
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.clinical = ClinicalMLP(clinical_features, clinical_hidden, dropout) if clinical_features else None
        width = backbone.num_features + (clinical_hidden if clinical_features else 0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, 1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features [B, num_features] of frames [B, 3, H, W]."""
        if self.standardizer is not None:
            images = self.standardizer(images)
        return self.backbone((images - self.input_mean) / self.input_std)

    def classify(self, features: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B] from backbone features (used directly with the frozen-feature cache)."""
        if self.clinical is not None:
            if clinical is None:
                raise ValueError("this model uses clinical features; pass clinical=[B, D]")
            features = torch.cat([features, self.clinical(clinical.to(features.dtype))], dim=1)
        return self.head(features).squeeze(1)

    def forward(self, images: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.embed(images), clinical)
