"""Imaging: read sagittal series into the canonical display, N4, ROI crops, the prepared store.

See docs/imaging.md.
"""

from vcpred.imaging.batch import PrepareSummary, prepare_cohort
from vcpred.imaging.io import read_volume
from vcpred.imaging.orient import CANONICAL_CODES, Volume
from vcpred.imaging.pipeline import PreparedPatient, PrepareParams, prepare_patient
from vcpred.imaging.preprocess import CropROI, N4Correct, Normalize, Resize, SelectFrames
from vcpred.imaging.store import load_prepared

__all__ = [
    "CANONICAL_CODES", "CropROI", "N4Correct", "Normalize", "PrepareParams", "PrepareSummary",
    "PreparedPatient", "Resize", "SelectFrames", "Volume", "load_prepared", "prepare_cohort",
    "prepare_patient", "read_volume",
]
