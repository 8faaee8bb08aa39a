"""Loading a study: an upload (zip of DICOM, or NIfTI) -> its series; the chosen series -> the
canonical volume the page shows and the prediction reads."""

from __future__ import annotations

import threading
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from vcpred.imaging import read_volume
from vcpred.serve.archive import safe_extract
from vcpred.serve.errors import TooLarge, Unusable
from vcpred.serve.series import dicom_series, isolate, nifti_series
from vcpred.serve.settings import ServeSettings
from vcpred.serve.studies import Study
from vcpred.serve.uploads import receive_body, sniff

UPLOAD_NAME = "upload.bin"
# Unpacking and reading volumes, at most two at once (each may hold a volume of the voxel budget
# several times over while it is read and reoriented); others wait their turn.
READING = threading.BoundedSemaphore(2)


async def receive_upload(request, folder: Path, settings: ServeSettings) -> None:
    """Receive the body into the (future) study folder, before the study counts as open."""
    await receive_body(request, folder / UPLOAD_NAME, settings.max_upload_bytes, settings)


async def load_upload(study: Study, settings: ServeSettings) -> None:
    """Unpack the received upload and list its series."""
    await run_in_threadpool(_unpack, study, study.folder / UPLOAD_NAME, settings)


def _unpack(study: Study, raw: Path, settings: ServeSettings) -> None:
    with study.lock, READING:
        kind = sniff(raw, settings)
        if kind == "zip":
            unpack_zip(study, raw, settings)
            raw.unlink()
        else:  # read_volume knows NIfTI by its suffix
            study.root = study.folder
            study.series = nifti_series(raw.rename(study.folder / f"image.{kind}"), settings)
        choose_only_series(study, settings)


def unpack_zip(study: Study, archive: Path, settings: ServeSettings) -> None:
    root = study.folder / "upload"
    root.mkdir(mode=0o700)
    safe_extract(archive, root, settings)
    study.root, study.series = root, dicom_series(root, settings)


def choose_only_series(study: Study, settings: ServeSettings) -> None:
    """Refuse a study without a usable series (naming why each is refused); open it when it has one."""
    usable = [entry for entry in study.series if entry.refused is None]
    if not usable:
        reasons = "; ".join(f"{e.description!r} ({e.slices} slices): {e.refused}" for e in study.series)
        if any(entry.too_large for entry in study.series):
            raise TooLarge(f"no series to use: {reasons}")
        raise Unusable(f"no sagittal series to use: {reasons}")
    if len(study.series) == 1:
        choose_series(study, usable[0].id, settings)


def choose_series(study: Study, series_id: str, settings: ServeSettings) -> None:
    """Read the chosen series (into its own folder for DICOM) as the study's volume."""
    entry = study.entry(series_id)
    if entry.refused:
        raise Unusable(f"series {entry.description!r} cannot be used: {entry.refused}")
    if entry.volume is not None:  # NIfTI, read at upload
        image, volume = entry.files[0], entry.volume
    else:
        image = isolate(entry, study.root, study.folder / f"series-{entry.id}")
        volume = read_volume(image)
    study.chosen, study.image, study.volume, study.prediction = entry, image, volume, None
