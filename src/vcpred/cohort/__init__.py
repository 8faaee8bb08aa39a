"""Cohort manifest, validation, summary and patient-level splits."""

from vcpred.cohort.manifest import Cohort, PatientRecord, Problem, Roi
from vcpred.cohort.splits import Split, check_splits, load_splits, make_splits, save_splits
from vcpred.cohort.summary import summarize
from vcpred.cohort.validate import ManifestCheck, check_manifest, load_manifest

__all__ = [
    "Cohort", "ManifestCheck", "PatientRecord", "Problem", "Roi", "Split", "check_manifest",
    "check_splits", "load_manifest", "load_splits", "make_splits", "save_splits", "summarize",
]
