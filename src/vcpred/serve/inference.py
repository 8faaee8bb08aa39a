"""One prediction for a study, through `vcpred.predict.predict_patient` and the predict command's
writer (`write_patient`): the numbers, prediction.json and report.html are those `vcpred predict`
gives for the same image, ROI and clinical values."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from vcpred.predict.bundle import Bundle
from vcpred.output_folder import replacing
from vcpred.predict.outputs import jsonable, write_patient
from vcpred.predict.predict import PatientPrediction, make_record, predict_patient
from vcpred.serve.clinical import ClinicalInputError, check_values, form_fields
from vcpred.serve.errors import ServeError
from vcpred.serve.studies import Study

# One inference at a time: torch already uses every core, and the split models are shared.
INFERENCE_LOCK = threading.Lock()
RESULT_DIR = "result"


class RoiInputError(ServeError):
    status = 422


@dataclass
class PredictRequest:
    slice: int
    box: tuple[int, int, int, int]
    clinical: dict
    allow_missing: bool = False
    label: str = "patient"

    @classmethod
    def from_json(cls, body) -> "PredictRequest":
        if not isinstance(body, dict):
            raise ServeError("the request body must be a JSON object {slice, box, clinical}")
        try:
            box = tuple(int(v) for v in body.get("box") or ())
            roi_slice = int(body["slice"])
        except (KeyError, TypeError, ValueError):
            raise RoiInputError("draw the ROI: 'slice' must be a whole number and 'box' four whole numbers "
                                "[row_min, col_min, row_max, col_max]") from None
        clinical = body.get("clinical") or {}
        if len(box) != 4 or not isinstance(clinical, dict):
            raise RoiInputError("'box' must be [row_min, col_min, row_max, col_max] and 'clinical' an object")
        label = str(body.get("label") or "patient").strip()[:64] or "patient"
        return cls(roi_slice, box, {str(k): v for k, v in clinical.items()}, bool(body.get("allow_missing")), label)


def check_roi(request: PredictRequest, shape: tuple[int, int, int]) -> None:
    """The box must lie inside the image, on an existing slice (the page draws it there)."""
    slices, rows, cols = shape
    r0, c0, r1, c1 = request.box
    if not 0 <= request.slice < slices:
        raise RoiInputError(f"ROI slice {request.slice} is outside the volume (slices 0 to {slices - 1})")
    if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
        raise RoiInputError(f"ROI box rows {r0}-{r1}, columns {c0}-{c1} is empty or outside the "
                            f"{rows} x {cols} image; draw it around the vertebral body")
    if r1 - r0 < 4 or c1 - c0 < 4:
        raise RoiInputError("the ROI box is smaller than 4 pixels; draw it around the whole vertebral body")


def sequence_name(bundle: Bundle) -> str:
    """The one image sequence the model reads (the record's key: 't2' unless the bundle names one)."""
    sequences = bundle.prepare_params().sequences
    return sequences[0] if sequences else "t2"


def predict_study(bundle: Bundle, study: Study, request: PredictRequest) -> tuple[PatientPrediction, list[str]]:
    """Predict, write OUT=study/result like `vcpred predict`; (prediction, input warnings)."""
    check_roi(request, study.require_volume().shape)
    warnings = check_values(form_fields(bundle), request.clinical, allow_missing=request.allow_missing)
    unknown = sorted(set(request.clinical) - set(bundle.clinical_columns))
    if unknown:
        raise ClinicalInputError(f"unknown clinical value(s) {', '.join(unknown)}; this model uses "
                                 f"{', '.join(bundle.clinical_columns) or 'none'}")
    given = {k: v for k, v in request.clinical.items() if v not in (None, "")}
    # The record carries the random study id: predict's log lines never name the patient.
    record = make_record({sequence_name(bundle): study.image}, request.slice, request.box, given,
                         patient_id=study.id)
    with INFERENCE_LOCK:
        prediction = predict_patient(bundle, record, allow_missing=request.allow_missing)
    prediction.result["patient_id"] = request.label  # the name shown in the report, like --patient-id
    with replacing(study.folder / RESULT_DIR, kind="prediction") as folder:  # the earlier result until complete
        write_patient(folder, prediction)
    return prediction, warnings


def result_payload(study: Study, prediction: PatientPrediction, warnings: list[str]) -> dict:
    base = f"/api/studies/{study.id}"
    return {"result": jsonable(prediction.result), "input_warnings": warnings,
            "heatmap": prediction.heat is not None,
            "downloads": {"prediction.json": f"{base}/prediction.json", "report.html": f"{base}/report.html"}}
