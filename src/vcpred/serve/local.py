"""Studies from the local folder given with --data-dir: its top-level DICOM folders, zips, NIfTI
files and patient folders holding NIfTI files (a NIfTI cohort's images/<patient>/t2.nii.gz). Names
come from the listing only (no paths), and symbolic links are neither listed nor followed (at the
top level or inside a folder: one could lead anywhere on the server), so the page cannot reach
outside it; nothing there is modified (a DICOM series is copied into the study's private folder)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vcpred.imaging.dicom import list_files
from vcpred.imaging.formats import is_dicom_file, is_nifti_name
from vcpred.serve.errors import ServeError, StudyNotFound
from vcpred.serve.loading import READING, choose_only_series, unpack_zip
from vcpred.serve.series import dicom_series, nifti_series
from vcpred.serve.settings import ServeSettings
from vcpred.serve.studies import Study
from vcpred.serve.uploads import sniff


def folder_niftis(folder: Path) -> list[Path]:
    """The NIfTI files of a patient folder that holds no DICOM file ([] for a DICOM folder)."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.is_symlink() and not p.name.startswith(".")]
    niftis = [p for p in files if is_nifti_name(p)]
    if not niftis or any(is_dicom_file(p) for p in files if p not in niftis):
        return []
    return niftis


def own_files(folder: Path) -> list[Path]:
    """The files under folder the reader would read, but symbolic links (the walk does not enter
    linked folders)."""
    return [p for p in list_files(folder) if not p.is_symlink()]


def kind_of(path: Path) -> str | None:
    name = path.name.lower()
    if path.is_symlink():
        return None
    if path.is_dir():
        return "NIfTI folder" if folder_niftis(path) else "DICOM folder"
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
        niftis = folder_niftis(path) if path.is_dir() else []
        if niftis:  # one series per file, numbered in name order
            study.root = path
            study.series = [replace(series, id=f"s{number}", description=nifti.name)
                            for number, nifti in enumerate(niftis, start=1)
                            for series in nifti_series(nifti, settings)]
        elif path.is_dir():
            study.root, study.series = path, dicom_series(path, settings, own_files(path))
        elif sniff(path, settings) == "zip":
            unpack_zip(study, path, settings)
        else:
            study.root, study.series = path.parent, nifti_series(path, settings)
        choose_only_series(study, settings)
