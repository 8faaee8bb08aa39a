"""The model's own patients in a validation cohort: those it was trained, tuned or recalibrated on.

Scoring them would report the model's apparent performance as external validation (AUC 0.825
against 0.617 on the patients it had not seen, issue 27). They are found from what the bundle
records (vcpred.bundle.known_patients: bundle.json `training_patients` and each recalibration
record's cohort), by id or by identical image files, before any patient is scored; they are left
out of every number, listed with their reason, and said on the console, the page and metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vcpred import console
from vcpred.bundle.known_patients import (
    IMAGE_DIGEST, RECALIBRATION, TRAINING, Match, image_digests, matches, recalibration_patients,
)

MAX_NAMED = 8  # patients named in the console line
METHOD = ("by id (after the manifest's case and Unicode normalisation) or by identical image files ("
          + IMAGE_DIGEST + "), against the patients bundle.json records")
NOT_RECORDED = ("the model does not record the patients it was trained on (exported by an earlier vcpred): they "
                "cannot be left out; export it again with this vcpred to have them left out")


@dataclass
class Overlap:
    """matches: cohort patient id -> how the model knows it; digests: each labelled patient's image
    digests (a recalibration made here records them); record: metrics.json `overlap`."""

    matches: dict[str, Match] = field(default_factory=dict)
    digests: dict[str, list[str]] = field(default_factory=dict)
    record: dict = field(default_factory=dict)

    def reasons(self) -> dict[str, str]:
        return {pid: match.reason() for pid, match in self.matches.items()}


def own_patients(bundle, records: list, *, recalibrating: bool = False) -> Overlap:
    """The labelled records the bundle was trained, tuned or recalibrated on; warns about them.
    recalibrating: their image digests are wanted for the new recalibration record, even where the
    bundle records no patients to compare them with (an older export)."""
    labelled = [r for r in records if r.label is not None]
    meta = bundle.meta
    known = [(TRAINING, meta.training_patients)] if meta.training_patients else []
    recalibrated = recalibration_patients(meta.recalibration)
    known += [(RECALIBRATION, patients) for patients in recalibrated]
    digests = {r.patient_id: image_digests(r) for r in labelled} if known or recalibrating else {}
    found = matches(labelled, digests, known)
    sets = {r.patient_id: r.set for r in labelled}
    record = {"method": METHOD, "training_patients_recorded": meta.training_patients is not None,
              "training_patients": len(meta.training_patients.patients) if meta.training_patients else None,
              "recalibration_patients": len({pid for patients in recalibrated for pid in patients.patients}),
              "left_out": [{"patient_id": m.patient_id, "set": sets[m.patient_id], "role": m.role,
                            "known_as": m.known_as, "by": m.by} for m in found.values()]}
    if meta.training_patients is None:
        record["note"] = NOT_RECORDED
        console.say(f"note: {NOT_RECORDED}")
    if found:
        console.warn(warning_line(list(found.values())))
    return Overlap(found, digests, record)


def _named(found: list[Match]) -> str:
    names = [m.patient_id if m.by == "id" else f"{m.patient_id} (the images of {m.known_as})"
             for m in found[:MAX_NAMED]]
    return ", ".join(names) + (f" and {len(found) - MAX_NAMED} more" if len(found) > MAX_NAMED else "")


def warning_line(found: list[Match]) -> str:
    """One line: how many of the cohort's patients are the model's own, which, and that they are left out."""
    parts = []
    for role, what in ((TRAINING, "trained or tuned on"), (RECALIBRATION, "recalibrated on")):
        of_role = [m for m in found if m.role == role]
        if of_role:
            parts.append(f"{len(of_role)} it was {what}: {_named(of_role)}")
    return (f"{len(found)} patient(s) of this cohort are the model's own ({'; '.join(parts)}); they are left out of "
            "every number, which would otherwise be optimistic: validate the model on patients it has not seen")
