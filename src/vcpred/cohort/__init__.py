"""Cohort manifest, validation, summary and patient-level splits."""

from vcpred.lazy import lazy_exports

# name -> defining submodule, imported on first use: a PatientRecord is made without pandas
_EXPORTS = {
    "Cohort": "manifest", "PatientRecord": "manifest", "Problem": "manifest", "Roi": "manifest",
    "Split": "splits", "check_splits": "splits", "load_splits": "splits", "make_splits": "splits",
    "save_splits": "splits",
    "summarize": "summary",
    "ManifestCheck": "validate", "check_manifest": "validate", "load_manifest": "validate",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
