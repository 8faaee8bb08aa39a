"""How a slice and a series are named for a person, in every output vcpred writes (the QC sheet, the
heat-map PNG and its DICOM Secondary Capture, the predict report, the console).

One rule for a slice: by the scanner's image number, the number a PACS viewer shows (DICOM
InstanceNumber; a multi-frame file's frame number), with the canonical 0-based index beside it,
"image 20 (index 19)"; the index is what the manifest's roi_slice and `--roi-slice` take. An input
without image numbers (NIfTI, or a DICOM series where a slice lacks InstanceNumber) says so:
"slice 19 (0-based index)". A series is named as `cohort init` and annotate list it
(vcpred.cohort.series_choice.SeriesInfo.summary): "study 2021-03-04, series 7, 'SAG T2', sagittal,
15 slices"; a NIfTI file by its path.

Everything is read from the provenance `prepare_patient` records (PreparedPatient.provenance, a
prediction's `provenance`): its first sequence is the one the slices are indexed in.
"""

from __future__ import annotations

from pathlib import Path

from vcpred.cohort.series_choice import SeriesInfo


def slice_label_parts(index: int, number: int | None) -> tuple[str, str]:
    """('image 20', 'index 19') for canonical index 19 with image number 20; ('slice 19', '0-based
    index') when the image number is unknown."""
    return (f"image {number}", f"index {index}") if number is not None else (f"slice {index}", "0-based index")


def slice_label(index: int, number: int | None) -> str:
    """'image 20 (index 19)', or 'slice 19 (0-based index)' when the image number is unknown."""
    name, index_note = slice_label_parts(index, number)
    return f"{name} ({index_note})"


def reference_sequence(provenance: dict | None) -> dict:
    """The provenance of the sequence the slice indices refer to (the first, the reference grid);
    {} when there is none (a clinical-only prediction)."""
    sequences = (provenance or {}).get("sequences") or {}
    return next(iter(sequences.values()), None) or {}


def image_number(provenance: dict | None, index: int) -> int | None:
    """The scanner's image number of canonical slice `index`, or None when the input has none."""
    numbers = reference_sequence(provenance).get("instance_numbers")
    if not isinstance(numbers, list) or not 0 <= index < len(numbers):
        return None
    number = numbers[index]
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def named_slice(provenance: dict | None, index: int) -> str:
    """slice_label of canonical slice `index` of the input this provenance describes."""
    return slice_label(int(index), image_number(provenance, int(index)))


SERIES_KEYS = ("format", "source", "series_uid", "series_description", "series_number", "study_uid", "study_date",
               "slice_count")


def series_record(provenance: dict | None, roi_slice: int) -> dict:
    """What a person needs to find the series read and the ROI's slice in PACS, from a prepared
    patient's provenance (the store records it in the patient's index entry for the QC sheet)."""
    sequences = (provenance or {}).get("sequences") or {}
    sequence = reference_sequence(provenance)
    return {"sequence": next(iter(sequences), None), **{key: sequence.get(key) for key in SERIES_KEYS},
            "roi_slice": int(roi_slice), "roi_image_number": image_number(provenance, int(roi_slice))}


def series_text(sequence: dict) -> str:
    """One sequence's provenance (or a series_record) as a person tells the series apart: for DICOM
    study date, series number, description, plane and slices; for NIfTI its file."""
    if sequence.get("format") == "dicom":
        text = {key: str(sequence.get(key) or "") for key in ("series_uid", "series_description", "study_uid",
                                                               "study_date")}
        return SeriesInfo(uid=text["series_uid"], description=text["series_description"], plane="sagittal",
                          slices=int(sequence.get("slice_count") or 0), study_uid=text["study_uid"],
                          study_date=text["study_date"], number=sequence.get("series_number")).summary()
    name = Path(str(sequence.get("source") or "?")).name
    return f"NIfTI file {name} (no series number or study date)" if sequence.get("format") == "nifti" else name
