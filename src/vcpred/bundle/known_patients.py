"""The patients a model has already seen, so `vcpred validate` never scores them as new ones.

bundle.json `training_patients` (KnownPatients, written by `vcpred export`): every development
patient of any exported split's training or validation set, as the splits file the runs were
trained on lists them, with the digest of each of the patient's image inputs. A recalibration
record's `cohort` (bundle.json `recalibration`, and each `previous` one) lists the patients it
was fitted on the same way (`patients`, `images`).

A patient of a validation cohort is one of them when its id is one of theirs after the manifest's
id normalisation (case and Unicode form: vcpred.cohort.validate.file_name_key), or when one of its
image inputs has the digest of one of theirs (a renamed patient). Neither the manifest's bytes
(line endings, the `set` column) nor where the model directory lies matter.

The image digest is taken over the input files, not the prepared frames: N4 bias correction gives
frames that differ in their last bits with the number of threads SimpleITK uses (1, 2 and 7 threads
gave three different frame hashes for one real T2), so a hash of prepared frames would miss the same
image prepared on another machine. The digest of a file is the sha256 of its bytes; of a DICOM
folder, the sha256 of its files' sorted sha256s (file names and paths do not count;
vcpred.hashing.input_digest, which `cohort check` uses too). Missing, unreadable and empty inputs have
no digest: such a patient is recognised by its id only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vcpred.hashing import input_digest

IMAGE_DIGEST = ("sha256 of each image input's bytes (a DICOM folder: sha256 of its files' sorted sha256s, names "
                "not included); missing or empty inputs have none")
TRAINING, RECALIBRATION = "training", "recalibration"


@dataclass(frozen=True)
class KnownPatients:
    """Patients a model has seen: their ids (as their manifest spells them) and, per id, the digest
    of each of its image inputs (IMAGE_DIGEST; an id without digests is recognised by id only)."""

    patients: list[str]
    images: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""  # where the ids come from, in words
    image_digest: str = IMAGE_DIGEST

    @classmethod
    def of_cohort(cls, cohort: dict, source: str) -> KnownPatients:
        """A recalibration record's cohort (`patients`, and `images` where recorded) as KnownPatients."""
        from vcpred.jsonio import from_dict

        return from_dict(cls, {"patients": list(cohort.get("patients") or []), "images": cohort.get("images") or {},
                               "source": source}, "recalibration.cohort")


def image_digests(record) -> list[str]:
    """The digests of a PatientRecord's image inputs (sorted by sequence name; missing ones left out)."""
    found = (input_digest(record.images[name]) for name in sorted(record.images))
    return [digest for digest in found if digest]


def known_patients(records: list, source: str) -> KnownPatients:
    """KnownPatients of these PatientRecords, their images hashed."""
    images = {record.patient_id: image_digests(record) for record in records}
    return KnownPatients(sorted(images), {pid: d for pid, d in sorted(images.items()) if d}, source)


@dataclass(frozen=True)
class Match:
    """A cohort patient the model has seen: as `known_as` among its `role` patients ("training" or
    "recalibration"), recognised `by` its id or its images."""

    patient_id: str
    known_as: str
    role: str
    by: str  # "id" | "images"

    def reason(self) -> str:
        """The exclusion reason, for excluded.csv, metrics.json and the page."""
        what = ("the model was trained or tuned on this patient (one of its development patients" if self.role == TRAINING
                else "the model was recalibrated on this patient (one of its recalibration patients")
        how = (f"'{self.known_as}', the same id" if self.by == "id" and self.known_as == self.patient_id
               else f"'{self.known_as}', the same id up to case or Unicode form" if self.by == "id"
               else f"'{self.known_as}', identical image files")
        return f"{what}: {how}); left out, since its score would be optimistic"


def matches(records: list, digests: dict[str, list[str]], known: list[tuple[str, KnownPatients]]) -> dict[str, Match]:
    """The cohort's patients (PatientRecords, with their image digests by id) that are among `known`
    [(role, KnownPatients)], by id after normalisation or by an image digest; the first role wins."""
    from vcpred.cohort.validate import file_name_key

    found: dict[str, Match] = {}
    for role, patients in known:
        by_id = {file_name_key(pid): pid for pid in patients.patients}
        by_image = {digest: pid for pid, listed in patients.images.items() for digest in listed}
        for record in records:
            pid = record.patient_id
            if pid in found:
                continue
            if file_name_key(pid) in by_id:
                found[pid] = Match(pid, by_id[file_name_key(pid)], role, "id")
            elif image := next((d for d in digests.get(pid, []) if d in by_image), None):
                found[pid] = Match(pid, by_image[image], role, "images")
    return found


def recalibration_patients(record: dict | None) -> list[KnownPatients]:
    """The patients of a bundle's recalibration and of every earlier one it was composed with."""
    found = []
    while record:
        cohort = record.get("cohort") or {}
        where = "at export" if record.get("fitted_at") == "export" else f"on {cohort.get('manifest', 'a cohort')}"
        found.append(KnownPatients.of_cohort(cohort, f"the recalibration fitted {where}"))
        record = record.get("previous")
    return found
