"""Simulate one patient and write its images; return its manifest and truth rows.

Runs in worker processes, so everything it needs arrives in one picklable `PatientJob`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vcpred.synth.patient import PatientSpec, SimulatedPatient, simulate
from vcpred.synth.risk import TL_JUNCTION
from vcpred.synth.writers import SeriesInfo, write_dicom_series, write_nifti

MANIFEST_COLUMNS = ["patient_id", "set", "site", "level", "label", "age", "sex", "bmi", "bmd_tscore",
                    "steroid", "diabetes", "days_to_mri", "roi_slice", "roi_row_min", "roi_col_min",
                    "roi_row_max", "roi_col_max"]
TRUTH_COLUMNS = ["patient_id", "set", "site", "level", "true_probability", "true_logit",
                 "image_logit", "clinical_logit", "morphology", "compression", "ap_ratio", "edema",
                 "cleft", "cleft_x_mm", "cleft_on_roi_slice", "cleft_slices", "posterior_wall",
                 "retropulsion_mm", "tl_junction", "old_fractures", "n_slices", "pixel_mm",
                 "spacing_mm"]
SERIES_NUMBERS = {"t2": 3, "t1": 4}


@dataclass(frozen=True)
class PatientJob:
    spec: PatientSpec
    sequences: tuple[str, ...]
    fmt: str                 # "dicom" | "nifti"
    out: Path
    size: int | None = None


def image_path(patient_id: str, sequence: str, fmt: str) -> str:
    """Image location relative to the output folder (a series folder for DICOM)."""
    return f"images/{patient_id}/{sequence}" + (".nii.gz" if fmt == "nifti" else "")


def series_info(p: SimulatedPatient, sequence: str) -> SeriesInfo:
    g, site = p.geometry, p.site
    return SeriesInfo(
        patient_id=p.spec.patient_id, sex=p.clinical.sex, age=int(p.clinical.age), sequence=sequence,
        series_number=SERIES_NUMBERS[sequence], manufacturer=site.manufacturer, model=site.model,
        field_t=site.field_t, pixel_mm=g.pixel_mm, thickness_mm=g.thickness_mm,
        spacing_mm=g.spacing_mm, origin_lps=p.origin_lps, rescale=site.rescale,
        study_day=p.study_day, uid_seed=f"vcpred-synth-{p.spec.seed}")


def write_patient(job: PatientJob) -> tuple[dict, dict, int]:
    """Simulate, write the images, and return (manifest row, truth row, bytes written)."""
    p = simulate(job.spec, job.sequences, job.size)
    written = 0
    images = {}
    for sequence in job.sequences:
        relative = image_path(job.spec.patient_id, sequence, job.fmt)
        info = series_info(p, sequence)
        if job.fmt == "dicom":
            files = write_dicom_series(job.out / relative, p.volumes[sequence], info)
        else:
            files = [write_nifti(job.out / relative, p.volumes[sequence], info)]
        written += sum(f.stat().st_size for f in files)
        images[f"image_{sequence}"] = relative
    return manifest_row(p, images), truth_row(p), written


def manifest_row(p: SimulatedPatient, images: dict[str, str]) -> dict:
    k, r0, c0, r1, c1 = p.roi
    return {"patient_id": p.spec.patient_id, "set": p.spec.set_name, "site": p.site.name,
            "level": p.lesion.level, "label": p.risk.label, **p.clinical.as_row(), **images,
            "roi_slice": k, "roi_row_min": r0, "roi_col_min": c0, "roi_row_max": r1, "roi_col_max": c1}


def truth_row(p: SimulatedPatient) -> dict:
    les, g = p.lesion, p.geometry
    return {
        "patient_id": p.spec.patient_id, "set": p.spec.set_name, "site": p.site.name,
        "level": les.level, "true_probability": f"{p.risk.probability:.6f}", "true_logit": f"{p.risk.logit:.6f}",
        "image_logit": f"{p.risk.image_part:.6f}", "clinical_logit": f"{p.risk.clinical_part:.6f}",
        "morphology": les.morphology, "compression": f"{les.compression:.4f}",
        "ap_ratio": f"{les.ap_ratio:.4f}", "edema": f"{les.edema:.4f}", "cleft": les.cleft,
        "cleft_x_mm": f"{les.cleft_x_mm:.2f}" if les.cleft else "",
        "cleft_on_roi_slice": int(p.roi[0] in p.cleft_slices),
        "cleft_slices": " ".join(map(str, p.cleft_slices)), "posterior_wall": les.posterior_wall,
        "retropulsion_mm": f"{les.retropulsion_mm:.2f}", "tl_junction": int(les.level in TL_JUNCTION),
        "old_fractures": " ".join(f"{lv}:{r:.3f}" for lv, r in les.old_fractures),
        "n_slices": g.n_slices, "pixel_mm": g.pixel_mm, "spacing_mm": g.spacing_mm,
    }
