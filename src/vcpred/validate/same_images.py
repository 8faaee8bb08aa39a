"""The same image files under two patient ids in the cohort `vcpred validate` scores (issue 27).

Scoring both would count one image twice in every number (the AUC compares each case with each
control, so a duplicated case or control weighs double), and with opposite labels one of them is
wrong. They are found before any patient is scored with `cohort check`'s own comparison
(vcpred.cohort.validate.same_image_groups: identical image files, whatever their names or paths),
among the labelled patients left to score; the first in manifest order is scored, each other one is
left out with the reason "same images as <id> ...", listed like every patient not scored, and said
on the console, the page and metrics.json `same_images`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vcpred import console

MAX_NAMED = 8  # patients named in the console line
METHOD = ("identical image files (cohort check's comparison: each image input's bytes, a DICOM folder's files "
          "whatever their names), among the labelled patients left to score; the first in manifest order is scored")


@dataclass
class SameImages:
    """reasons: patient id -> why it is left out; record: metrics.json `same_images`."""

    reasons: dict[str, str] = field(default_factory=dict)
    record: dict = field(default_factory=dict)


def _label(record) -> str:
    return "unknown" if record.label is None else str(record.label)


def _reason(record, first) -> str:
    opposite = (f"; the labels are opposite ({_label(record)} here, {_label(first)} there), so one of them is wrong"
                if record.label != first.label else "")
    return (f"same images as {first.patient_id} (row {first.row}): one patient under two ids, or an image filed "
            f"under the wrong patient{opposite}; left out so that no image counts twice (write a reason into its "
            "exclude cell, or point its row at its own images)")


def same_images(records: list, skip: set[str]) -> SameImages:
    """The labelled records (but those in skip: the model's own) whose image files are another's
    earlier in the manifest; warns about them."""
    from vcpred.cohort.validate import same_image_groups

    to_score = [r for r in records if r.label is not None and r.patient_id not in skip]
    earliest: dict[str, object] = {}  # patient id -> the first patient (manifest order) with one of its images
    for group in same_image_groups(to_score):
        first = min((record for record, _ in group), key=lambda r: r.row)
        for record, _ in group:
            if record.patient_id != first.patient_id and (
                    record.patient_id not in earliest or first.row < earliest[record.patient_id].row):
                earliest[record.patient_id] = first
    left_out = [(record, earliest[record.patient_id]) for record in to_score if record.patient_id in earliest]
    record = {"method": METHOD, "left_out": [{"patient_id": r.patient_id, "set": r.set, "same_as": first.patient_id,
                                              "labels_opposite": r.label != first.label} for r, first in left_out]}
    if left_out:
        console.warn(warning_line(left_out))
    return SameImages({r.patient_id: _reason(r, first) for r, first in left_out}, record)


def warning_line(left_out: list) -> str:
    """One line: how many scored patients repeat another's images, which, and what was done."""
    named = ", ".join(f"{r.patient_id} (same images as {first.patient_id})" for r, first in left_out[:MAX_NAMED])
    more = f" and {len(left_out) - MAX_NAMED} more" if len(left_out) > MAX_NAMED else ""
    opposite = sum(r.label != first.label for r, first in left_out)
    labels = f"; {opposite} of them with the opposite label, so one label of each pair is wrong" if opposite else ""
    return (f"{len(left_out)} patient(s) of this cohort have the same image files as another patient: {named}{more}"
            f"{labels}; each is left out, so that no image counts twice in the numbers (run vcpred cohort check on "
            "the manifest to see them all)")
