"""One prediction for a study, through `vcpred.predict.predict_patient` and the predict command's
writer (`write_patient`): the numbers, prediction.json and report.html are those `vcpred predict`
gives for the same image, ROI and clinical values."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from vcpred.predict.bundle import Bundle
from vcpred.output_folder import replacing
from vcpred.jsonio import jsonable
from vcpred.predict.outputs import write_patient
from vcpred.predict.clinical_input import check_clinical
from vcpred.predict.inputs import make_record, parse_level
from vcpred.predict.predict import PatientPrediction, predict_patient
from vcpred.serve.errors import RequestTypeError, ServeError
from vcpred.serve.roi import check_box, read_roi
from vcpred.serve.private import Scrubber
from vcpred.serve.studies import Study

# One inference at a time: torch already uses every core, and the split models are shared.
INFERENCE_LOCK = threading.Lock()
RESULT_DIR = "result"


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


FIELDS = ("slice", "box", "clinical", "allow_missing", "label", "level")
MAX_LABEL = 64
MAX_CLINICAL_TEXT = 100


def clinical_value(name: str, value):
    """A clinical value as JSON gives it: text, a finite or infinite number (the form's checks judge
    it), or null (missing); lists, objects and booleans are refused."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and len(value) <= MAX_CLINICAL_TEXT:
        return value
    shown = "text longer than 100 characters" if isinstance(value, str) else f"{type(value).__name__} {value!r:.40}"
    raise RequestTypeError(f"clinical value {name!r} must be a number or short text, not {shown}")


@dataclass
class PredictRequest:
    slice: int
    box: tuple[int, int, int, int]
    clinical: dict
    allow_missing: bool = False
    label: str = "patient"
    level: str | None = None  # the vertebral level of the fracture, as `vcpred predict --level`

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
        level = body.get("level")
        if level is not None and not isinstance(level, str):
            raise RequestTypeError(f"'level' (the vertebral level, e.g. L1) must be text, not {level!r:.40}")
        return cls(roi_slice, box, {str(k): clinical_value(str(k), v) for k, v in clinical.items()}, allow_missing,
                   label or "patient", parse_level(level))


def check_roi(request: PredictRequest, shape: tuple[int, int, int]) -> None:
    """The box must lie inside the image, on an existing slice (the page draws it there)."""
    check_box(request.slice, request.box, shape)


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
                         patient_id=study.id, level=request.level)
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
