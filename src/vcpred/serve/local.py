"""Studies from the local folder given with --data-dir: its top-level DICOM folders, zips and
NIfTI files. Names come from the listing only (no paths), so the page cannot reach outside it;
nothing there is modified (a DICOM series is copied into the study's private folder)."""

from __future__ import annotations

from pathlib import Path

from vcpred.serve.errors import ServeError, StudyNotFound
from vcpred.serve.loading import READING, choose_only_series, unpack_zip
from vcpred.serve.series import dicom_series, nifti_series
from vcpred.serve.settings import ServeSettings
from vcpred.serve.studies import Study
from vcpred.serve.uploads import sniff


def kind_of(path: Path) -> str | None:
    name = path.name.lower()
    if path.is_dir():
        return "DICOM folder"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".nii", ".nii.gz")):
        return "NIfTI"
    return None


def entries(data_dir: Path) -> list[dict]:
    """The openable entries of the folder, by name (hidden ones left out)."""
    found = []
    try:
        for path in sorted(Path(data_dir).iterdir()):
            kind = None if path.name.startswith(".") else kind_of(path)
            if kind:
                found.append({"name": path.name, "kind": kind})
    except OSError as exc:  # removed, unmounted or unreadable since the server started
        raise LocalFolderUnavailable(f"the local folder (--data-dir) cannot be read now ({exc.strerror}); check it "
                                     "is still there and readable, or restart vcpred serve") from None
    return found


class LocalFolderUnavailable(ServeError):
    status = 503


def open_entry(settings: ServeSettings, name: str, study: Study) -> None:
    if settings.data_dir is None:
        raise ServeError("no local folder is configured (vcpred serve --data-dir FOLDER)")
    if name not in {e["name"] for e in entries(settings.data_dir)}:
        raise StudyNotFound(f"{name!r} is not an entry of the local folder")
    path = Path(settings.data_dir) / name
    with study.lock, READING:
        if path.is_dir():
            study.root, study.series = path, dicom_series(path, settings)
        elif sniff(path, settings) == "zip":
            unpack_zip(study, path, settings)
        else:
            study.root, study.series = path.parent, nifti_series(path, settings)
        choose_only_series(study, settings)
