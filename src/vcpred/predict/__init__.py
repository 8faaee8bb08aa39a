"""Prediction for new patients with an exported model (made by vcpred.bundle; docs/predict.md).

Research use only, not a medical device.
"""

from vcpred.lazy import lazy_exports

# name -> defining submodule, imported on first use: `vcpred predict --help` must not load torch and timm
_EXPORTS = {
    "Bundle": "bundle",
    "BundleError": "bundle",
    "PatientPrediction": "predict",
    "load_bundle": "bundle",
    "make_record": "inputs",
    "predict_manifest": "outputs",
    "predict_patient": "predict",
    "write_patient": "outputs",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
