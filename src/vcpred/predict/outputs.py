"""Writing predict outputs: OUT/prediction.json, heatmap.png, report.html; or, for a manifest,
OUT/predictions.csv, OUT/heatmaps/<patient>.png and OUT/summary.json (a patient the manifest excludes
is listed in predictions.csv with its reason as its error, as an unreadable one is, never predicted).

The writers fill the folder they are given; the predict command gives them the temporary sibling of
`vcpred.output_folder.replacing`, so OUT changes only when the whole prediction is written."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vcpred import console
from vcpred.errors import VcpredError
from vcpred.imaging.naming import named_slice
from vcpred.jsonio import json_text
from vcpred.os_errors import is_user_os_error
from vcpred.predict.bundle import Bundle
from vcpred.predict.batch import Rate, prepared_ahead
from vcpred.predict.predict import NOTICE, PatientPrediction, predict_patient, provenance_fields
from vcpred.predict.report import patient_heading, report_html
from vcpred.predict.risk import risk_of, risk_text

if TYPE_CHECKING:  # pandas only for a manifest: one patient's prediction does without it
    import pandas as pd

GENERATOR = "vcpred predict"
EXCLUDED = "excluded in the manifest"  # how an excluded patient's error in predictions.csv begins


def prepare_out(out: Path, *, force: bool = False) -> Path:
    """For callers that write in place (benchmarks/bench_predict.py): OUT checked by the output-folder
    guard (a folder predict did not write is refused, nothing is deleted) and created. Files written
    into it overwrite an earlier prediction's file by file; the predict command itself writes beside
    OUT through `vcpred.output_folder.replacing` instead, so a failure never touches OUT."""
    from vcpred.output_folder import MARKER, check

    out = Path(out)
    if check(out, kind="prediction", force=force) == "own":
        (out / MARKER).unlink(missing_ok=True)  # our own list would no longer match what is written in place
    out.mkdir(parents=True, exist_ok=True)
    return out


def heatmap_title(result: dict) -> str:
    """The overlay's title, burnt into the PNG (and so into the DICOM Secondary Capture): the patient
    and its vertebral level, the slice as the scanner numbers it, the probability and the risk as
    every output words it."""
    where = f", {named_slice(result.get('provenance'), result['roi']['slice'])}" if result.get("roi") else ""
    return (f"{patient_heading(result)}{where}: P(collapse) {100 * result['probability']:.1f} % ({risk_text(result)})"
            f" - {NOTICE}")


def heatmap_png(prediction: PatientPrediction, path: Path | None, *, context: float | None = None) -> bytes | None:
    """The heat-map overlay PNG (None for clinical-only models). context: show only the crop box's
    surroundings, `context` times its side, enlarged, with the whole slice as a thumbnail."""
    if prediction.heat is None:
        return None
    from vcpred.explain import overlay_png, zoom_box

    prepared, result = prediction.prepared, prediction.result
    title = heatmap_title(result)
    view = None if context is None else zoom_box(prepared.crop_box, prepared.main_slice.shape, context)
    return overlay_png(prepared.main_slice, prediction.heat, prepared.roi_box, prepared.crop_box, path=path,
                       spacing=tuple(prepared.spacing[1:]), title=title, view=view)


def write_patient(out: Path, prediction: PatientPrediction, *, dicom: bool = False) -> list[Path]:
    """prediction.json, heatmap.png (image models) and report.html in OUT (+ heatmap_sc.dcm, a
    DICOM Secondary Capture of the overlay, when dicom)."""
    written = [out / "prediction.json"]
    png = heatmap_png(prediction, out / "heatmap.png")
    if png is not None:
        written.append(out / "heatmap.png")
        prediction.result["heatmap"]["file"] = "heatmap.png"
        if dicom:
            from vcpred.predict.dicom_sc import write_secondary_capture

            written.append(write_secondary_capture(out / "heatmap_sc.dcm", png, prediction.result))
    (out / "prediction.json").write_text(json_text(prediction.result))
    (out / "report.html").write_text(report_html(prediction.result, png))
    return written + [out / "report.html"]


def _row(record, prediction: PatientPrediction | None, error: str | None, heatmap: str | None) -> dict:
    row = {"patient_id": record.patient_id, "set": record.set, "label": record.label}
    if prediction is not None:
        r = prediction.result
        row.update(probability=r["probability"], sd=r["sd"], low=r["interval"]["low"], high=r["interval"]["high"],
                   threshold=r["threshold"], category=r["category"], n_frames=len(r["per_frame"]),
                   borderline=r.get("borderline", False), risk=risk_of(r), imputed=";".join(r["imputed"]),
                   outside_training_range=";".join(f["name"] for f in r.get("clinical_flags", [])),
                   heatmap=heatmap or "")
    row["error"] = error or ""
    return row


def _excluded_row(patient) -> dict:
    """An ExcludedPatient's predictions.csv row: not predicted, its reason as its error."""
    return {"patient_id": patient.patient_id, "set": patient.set, "label": None,
            "error": f"{EXCLUDED} (row {patient.row}): {patient.reason}"}


def manifest_counts(table: pd.DataFrame) -> tuple[int, int, int]:
    """(predicted, failed, excluded in the manifest) patients of a predictions.csv table."""
    errors = table["error"].fillna("")
    excluded = int(errors.str.startswith(EXCLUDED).sum())
    failed = int((errors != "").sum()) - excluded
    return len(table) - failed - excluded, failed, excluded


def predict_manifest(bundle: Bundle, manifest: str | Path, out: Path, *, allow_missing: bool = False) -> pd.DataFrame:
    """Every manifest patient -> predictions.csv rows (+ heatmaps/<id>.png); a failing patient gets
    its error in the `error` column and the others go on (also after an unexpected exception, which is
    recorded as an internal error; an OS error such as a full disk stops the whole run). A patient the
    manifest excludes is not read: its row, in manifest order, has the reason as its error."""
    import pandas as pd

    from vcpred.cohort import load_manifest
    from vcpred.imaging.store import safe_name

    # a refused clinical value is that patient's error (check_clinical), the others are predicted; each
    # patient is predicted on its own, so two ids with the same image are no problem here
    cohort = load_manifest(manifest, per_patient_clinical=True, compare_images=False)
    if cohort.excluded:  # as prepare says it; their rows say it in predictions.csv
        console.say(f"{len(cohort.excluded)} patient(s) excluded in the manifest, not predicted: "
                    + "; ".join(f"{e.patient_id} ({e.reason})" for e in cohort.excluded))
    rows = []
    (out / "heatmaps").mkdir(exist_ok=True)
    rate = Rate()
    for record, prepared in prepared_ahead(bundle, cohort.records, desc="predict"):
        try:
            prediction = predict_patient(bundle, record, allow_missing=allow_missing, prepared=prepared,
                                         strict_keys=False)  # a manifest may hold other columns
        except VcpredError as exc:
            console.warn(f"patient {record.patient_id!r} not predicted: {exc}")
            rows.append(_row(record, None, str(exc), None))
            continue
        except Exception as exc:  # a bug must not cost the other patients their prediction
            if is_user_os_error(exc):  # a full disk or missing permissions concern every patient: stop
                raise
            reason = f"internal error (a bug in vcpred): {type(exc).__name__}: {exc}"
            console.warn(f"patient {record.patient_id!r} not predicted: {reason}")
            rows.append(_row(record, None, reason, None))
            continue
        name = f"heatmaps/{safe_name(record.patient_id)}.png"
        written = heatmap_png(prediction, out / name)
        rows.append(_row(record, prediction, None, name if written else None))
    rate.say("predicted", len(rows))
    order = {r.patient_id: r.row for r in cohort.records} | {e.patient_id: e.row for e in cohort.excluded}
    rows = sorted(rows + [_excluded_row(e) for e in cohort.excluded], key=lambda row: order[row["patient_id"]])
    table = pd.DataFrame(rows)
    predicted, failed, excluded = manifest_counts(table)
    table.to_csv(out / "predictions.csv", index=False, float_format="%.6g")
    summary = {"generator": GENERATOR, "notice": NOTICE, **provenance_fields(bundle),
               "model_id": bundle.meta.model_id, "manifest": str(manifest),
               "precision": bundle.precision, "precision_reason": bundle.precision_reason,
               "patients": len(rows), "failed": failed, "excluded": excluded, "threshold": bundle.threshold,
               # patients predicted with a clinical value outside the training range (the model extrapolates)
               "outside_training_range": int((table.get("outside_training_range", pd.Series(dtype=str))
                                              .fillna("") != "").sum())}
    (out / "summary.json").write_text(json_text(summary))
    return table
