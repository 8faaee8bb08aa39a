"""Imaging: read sagittal series into the canonical display, N4, ROI crops, the prepared store.

See docs/imaging.md. The names below are imported when first used, so that light modules
(`vcpred.imaging.formats`, used by `vcpred cohort check`) do not pull in SimpleITK and the store.
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "PrepareSummary": "batch", "prepare_cohort": "batch", "read_volume": "io",
    "CANONICAL_CODES": "orient", "Volume": "orient",
    "PreparedPatient": "pipeline", "PrepareParams": "pipeline", "prepare_patient": "pipeline",
    "CropROI": "preprocess", "N4Correct": "preprocess", "Normalize": "preprocess", "Resize": "preprocess",
    "SelectFrames": "preprocess", "load_prepared": "store",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module 'vcpred.imaging' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vcpred.imaging.{_SOURCES[name]}"), name)
