"""One prediction for a study, through `vcpred.predict.predict_patient` and the predict command's
writer (`write_patient`): the numbers, prediction.json and report.html are those `vcpred predict`
gives for the same image, ROI and clinical values."""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass

from vcpred.predict.bundle import Bundle
from vcpred.output_folder import replacing
from vcpred.jsonio import jsonable
from vcpred.predict.outputs import write_patient
from vcpred.predict.clinical_input import check_clinical
from vcpred.predict.predict import PatientPrediction, make_record, predict_patient
from vcpred.serve.errors import ServeError
from vcpred.serve.private import Scrubber
from vcpred.serve.studies import Study

# One inference at a time: torch already uses every core, and the split models are shared.
INFERENCE_LOCK = threading.Lock()
RESULT_DIR = "result"


class RoiInputError(ServeError):
    status = 422


class RequestTypeError(ServeError):
    """A field of the right name with the wrong JSON type (a string for a boolean, ...)."""

    status = 422


class Busy(ServeError):
    status = 429


class PredictionGate:
    """Admission to inference: at most `limit` predictions running or waiting (one runs at a time,
    INFERENCE_LOCK); the next is refused at once (429) instead of queueing without bound."""

    def __init__(self, limit: int):
        self.limit, self.admitted = limit, 0
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def admit(self):
        with self._guard:
            if self.admitted >= self.limit:
                raise Busy(f"the server is busy: {self.admitted} predictions are running or waiting, the most it "
                           "queues (one runs at a time); try again in a minute")
            self.admitted += 1
        try:
            yield
        finally:
            with self._guard:
                self.admitted -= 1


FIELDS = ("slice", "box", "clinical", "allow_missing", "label")
MAX_LABEL = 64
MAX_CLINICAL_TEXT = 100


def whole_number(value, what: str) -> int:
    """A JSON integer (or an integral float such as 7.0); never a boolean, a string or 1e400."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RoiInputError(what)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise RoiInputError(what)
    if abs(value) > 2**31:
        raise RoiInputError(what)
    return int(value)


def clinical_value(name: str, value):
    """A clinical value as JSON gives it: text, a finite or infinite number (the form's checks judge
    it), or null (missing); lists, objects and booleans are refused."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and len(value) <= MAX_CLINICAL_TEXT:
        return value
    shown = "text longer than 100 characters" if isinstance(value, str) else f"{type(value).__name__} {value!r:.40}"
    raise RequestTypeError(f"clinical value {name!r} must be a number or short text, not {shown}")


def read_roi(body: dict) -> tuple[int, tuple[int, int, int, int]]:
    """(slice, box) of a request body's 'slice' and 'box' fields, each checked for its JSON type."""
    roi_slice = whole_number(body.get("slice"), "draw the ROI: 'slice' must be a whole number (the ROI slice, "
                                                "counting from 0)")
    box_message = "draw the ROI: 'box' must be four whole numbers [row_min, col_min, row_max, col_max]"
    raw_box = body.get("box")
    if not isinstance(raw_box, list) or len(raw_box) != 4:
        raise RoiInputError(box_message)
    return roi_slice, tuple(whole_number(v, box_message) for v in raw_box)


@dataclass
class PredictRequest:
    slice: int
    box: tuple[int, int, int, int]
    clinical: dict
    allow_missing: bool = False
    label: str = "patient"

    @classmethod
    def from_json(cls, body) -> "PredictRequest":
        """Every field checked for its JSON type: 422 naming the field otherwise."""
        if not isinstance(body, dict):
            raise ServeError("the request body must be a JSON object {slice, box, clinical}")
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            raise RequestTypeError(f"unknown field(s) {', '.join(map(str, unknown))}; a prediction takes "
                                   f"{', '.join(FIELDS)}")
        roi_slice, box = read_roi(body)
        clinical = body.get("clinical")
        if clinical is None:
            clinical = {}
        if not isinstance(clinical, dict):
            raise RequestTypeError("'clinical' must be an object {name: value}")
        allow_missing = body.get("allow_missing")
        if allow_missing is None:
            allow_missing = False
        if not isinstance(allow_missing, bool):
            raise RequestTypeError(f"'allow_missing' must be true or false (JSON), not {allow_missing!r:.40}")
        label = body.get("label")
        if label is not None and not isinstance(label, str):
            raise RequestTypeError(f"'label' (the name in the report) must be text, not {label!r:.40}")
        label = (label or "").strip()
        if len(label) > MAX_LABEL:
            raise RequestTypeError(f"'label' (the name in the report) is {len(label)} characters; at most {MAX_LABEL}")
        return cls(roi_slice, box, {str(k): clinical_value(str(k), v) for k, v in clinical.items()}, allow_missing,
                   label or "patient")


def check_roi(request: PredictRequest, shape: tuple[int, int, int]) -> None:
    """The box must lie inside the image, on an existing slice (the page draws it there)."""
    check_box(request.slice, request.box, shape)


def check_box(roi_slice: int, box: tuple[int, int, int, int], shape: tuple[int, int, int]) -> None:
    slices, rows, cols = shape
    r0, c0, r1, c1 = box
    if not 0 <= roi_slice < slices:
        raise RoiInputError(f"ROI slice {roi_slice} is outside the volume (slices 0 to {slices - 1})")
    if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
        raise RoiInputError(f"ROI box rows {r0}-{r1}, columns {c0}-{c1} is empty or outside the "
                            f"{rows} x {cols} image; draw it around the vertebral body")
    if r1 - r0 < 4 or c1 - c0 < 4:
        raise RoiInputError("the ROI box is smaller than 4 pixels; draw it around the whole vertebral body")


def sequence_name(bundle: Bundle) -> str:
    """The one image sequence the model reads (the record's key: 't2' unless the bundle names one)."""
    sequences = bundle.prepare_params().sequences
    return sequences[0] if sequences else "t2"


def predict_study(bundle: Bundle, study: Study, request: PredictRequest,
                  scrub: Scrubber | None = None) -> tuple[PatientPrediction, list[str]]:
    """Predict, write OUT=study/result like `vcpred predict`; (prediction, input warnings). scrub:
    takes server paths and the study id out of the result (prediction.json and the report)."""
    check_roi(request, study.require_volume().shape)
    # The clinical-input policy of `vcpred predict` (vcpred.predict.clinical_input), before any work:
    # a refused value is a 422 naming it; values outside the training range come back as flags.
    check = check_clinical(bundle, request.clinical, allow_missing=request.allow_missing)
    given = {k: v for k, v in request.clinical.items() if v not in (None, "")}
    # The record carries the random study id: predict's log lines never name the patient.
    record = make_record({sequence_name(bundle): study.image}, request.slice, request.box, given,
                         patient_id=study.id)
    with INFERENCE_LOCK:
        prediction = predict_patient(bundle, record, allow_missing=request.allow_missing)
    if scrub is not None:
        prediction.result = scrub.deep(prediction.result)
    prediction.result["patient_id"] = request.label  # the name shown in the report, like --patient-id
    if isinstance(prediction.result.get("provenance"), dict) and "patient_id" in prediction.result["provenance"]:
        prediction.result["provenance"]["patient_id"] = request.label  # not the internal study id
    with replacing(study.folder / RESULT_DIR, kind="prediction") as folder:  # the earlier result until complete
        write_patient(folder, prediction)
    return prediction, [flag["message"] for flag in check.flags]


def result_payload(study: Study, prediction: PatientPrediction, warnings: list[str]) -> dict:
    base = f"/api/studies/{study.id}"
    return {"result": jsonable(prediction.result), "input_warnings": warnings,
            "heatmap": prediction.heat is not None,
            "downloads": {"prediction.json": f"{base}/prediction.json", "report.html": f"{base}/report.html"}}
