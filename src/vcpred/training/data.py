"""Frames from the prepared store as tensors, and augmentation suited to sagittal MRI crops."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from vcpred.cohort import PatientRecord
from vcpred.imaging import load_prepared
from vcpred.imaging.store import prepared_offsets
from vcpred.models import ClinicalPreprocessor
from vcpred.models.inputs import three_channels


@dataclass
class FrameSet:
    """N frame samples: frames [N, 3, H, W], offsets [N], labels [N] (NaN = unlabelled)."""

    patient_ids: list[str]
    sets: list[str]
    offsets: np.ndarray
    frames: torch.Tensor | None  # None when only the index was loaded (features come from the cache)
    labels: np.ndarray
    clinical: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.patient_ids)

    def select(self, mask: np.ndarray) -> "FrameSet":
        """The samples where mask [N] is true (views, no copy of the pixels beyond indexing)."""
        index = np.flatnonzero(mask)
        pick = torch.from_numpy(index)
        return FrameSet([self.patient_ids[i] for i in index], [self.sets[i] for i in index], self.offsets[index],
                        None if self.frames is None else self.frames[pick], self.labels[index],
                        None if self.clinical is None else self.clinical[pick])


def _frame_offsets(store: Path, patient_id: str) -> np.ndarray:
    """The patient's frame offsets without building its frames (the file is verified like load_prepared)."""
    return prepared_offsets(store, patient_id)


def load_frames(store: Path, records: list[PatientRecord], set_names: list[str], *, main_only: bool,
                preprocessor: ClinicalPreprocessor | None, pixels: bool = True) -> FrameSet:
    """Every (patient, frame) sample of these records; the main frame only when asked.

    pixels=False loads only the index (ids, offsets, labels): enough when features are cached.
    """
    ids, sets, offsets, frames, labels, rows = [], [], [], [], [], []
    clinical = preprocessor.transform(records) if preprocessor else None
    for index, (record, set_name) in enumerate(zip(records, set_names)):
        if pixels:
            prepared = load_prepared(store, record.patient_id)
            patient_offsets = prepared.frame_offsets
        else:
            patient_offsets = _frame_offsets(store, record.patient_id)
        keep = patient_offsets == 0 if main_only else np.ones(len(patient_offsets), bool)
        if pixels:
            frames.append(three_channels(prepared.frames[keep]))
        count = int(keep.sum())
        ids += [record.patient_id] * count
        sets += [set_name] * count
        offsets.append(patient_offsets[keep])
        labels += [math.nan if record.label is None else float(record.label)] * count
        rows += [index] * count
    clinical_tensor = torch.from_numpy(clinical[rows]) if clinical is not None else None
    pixel_tensor = torch.from_numpy(np.concatenate(frames)) if pixels else None
    return FrameSet(ids, sets, np.concatenate(offsets).astype(int), pixel_tensor, np.asarray(labels), clinical_tensor)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image: rotation ±7°, scale 0.9–1.1, shift ±5 %, contrast ×0.85–1.15, brightness ±0.1 SD.

    Small on purpose: the vertebral body's shape and signal are the evidence; flips are left out
    because anterior/posterior and superior/inferior carry anatomy.
    """
    out = torch.empty_like(images)
    size = images.shape[-1]
    for i, image in enumerate(images):
        u = torch.rand(6, generator=generator).tolist()
        angle, scale = (u[0] - 0.5) * 14, 0.9 + 0.2 * u[1]
        shift = [round((u[2] - 0.5) * 0.1 * size), round((u[3] - 0.5) * 0.1 * size)]
        moved = TF.affine(image, angle=angle, translate=shift, scale=scale, shear=[0.0],
                          interpolation=TF.InterpolationMode.BILINEAR)
        mean = moved.mean()
        out[i] = (moved - mean) * (0.85 + 0.3 * u[4]) + mean + (u[5] - 0.5) * 0.2 * moved.std()
    return out
