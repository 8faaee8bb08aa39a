"""Exported models and prediction for new patients (docs/predict.md).

Research use only, not a medical device.
"""

from vcpred.predict.bundle import Bundle, BundleError, load_bundle
from vcpred.predict.export import export_configuration
from vcpred.predict.outputs import predict_manifest, write_patient
from vcpred.predict.predict import PatientPrediction, make_record, predict_patient

__all__ = ["Bundle", "BundleError", "PatientPrediction", "export_configuration", "load_bundle", "make_record",
           "predict_manifest", "predict_patient", "write_patient"]
