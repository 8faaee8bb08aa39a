"""Receiving an upload into a study's private folder, with a size limit, and telling its type from
its first bytes (never from a file name the browser sends)."""

from __future__ import annotations

import asyncio
import gzip
import os
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

from vcpred.imaging.formats import is_dicom_file
from vcpred.serve.errors import ServeError, SlowUpload, TooLarge, UnsupportedUpload
from vcpred.serve.settings import MB, ServeSettings

CHUNK = MB
NIFTI_HEADER_BYTES = 544  # NIfTI-2's header is the longer one (540 bytes + extension flag)


def _private_file(path: Path):
    """A new file only its owner can read (O_EXCL: never follows or reuses an existing name)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


async def body_chunks(request, settings: ServeSettings) -> AsyncIterator[bytes]:
    """The request body's chunks; SlowUpload (408) when the client sends nothing for
    upload_idle_timeout_s, or has not sent it all after upload_timeout_s (a stalled client must not
    hold the server's resources for as long as it keeps the connection open)."""
    stream = request.stream().__aiter__()
    deadline = time.monotonic() + settings.upload_timeout_s
    while True:
        left = deadline - time.monotonic()
        wait = min(settings.upload_idle_timeout_s, left)
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=max(wait, 0))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            what = (f"no data for {settings.upload_idle_timeout_s:g} s" if wait < left else
                    f"not complete after {settings.upload_timeout_s:g} s")
            raise SlowUpload(f"the request body stopped arriving ({what}); nothing was kept: upload again") from None
        yield chunk


async def receive_body(request, target: Path, limit: int, settings: ServeSettings) -> int:
    """Stream the raw request body into target; TooLarge as soon as it passes limit bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"upload of {int(declared) / MB:.1f} MB is over the {limit / MB:.0f} MB limit "
                       "(vcpred serve --max-upload-mb)")
    size = 0
    with _private_file(target) as handle:
        async for chunk in body_chunks(request, settings):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"upload is over the {limit / MB:.0f} MB limit (vcpred serve --max-upload-mb)")
            handle.write(chunk)
    if size == 0:
        raise ServeError("the upload is empty; choose a zipped DICOM series or a NIfTI file (.nii, .nii.gz)")
    return size


def is_nifti_header(head: bytes) -> bool:
    """NIfTI-1 (348-byte header, magic n+1) or NIfTI-2 (540, n+2), single-file form, either byte order."""
    for size, magic_at, magic in ((348, 344, b"n+1\0"), (540, 4, b"n+2\0")):
        if len(head) >= magic_at + 4 and head[magic_at:magic_at + 4] == magic and \
                size in (int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")):
            return True
    return False


def sniff(path: Path, settings: ServeSettings) -> str:
    """'zip', 'nii' or 'nii.gz' from the content; UnsupportedUpload for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(NIFTI_HEADER_BYTES)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        check_gzipped_nifti(path)
        return "nii.gz"
    if is_nifti_header(head):
        return "nii"
    if is_dicom_file(path):  # the reader's judgement: with or without preamble, "DICM" or file meta
        raise UnsupportedUpload("this is a single DICOM file; zip the folder holding the whole sagittal series "
                                "and upload the zip")
    raise UnsupportedUpload("not a zipped DICOM series nor a NIfTI file (.nii, .nii.gz); vcpred serve takes "
                            "only these")


def check_gzipped_nifti(path: Path) -> None:
    """A gzip file must hold a NIfTI image. Only the header is decompressed here: the image's size is
    judged from it (limits.check_nifti) and the reader decompresses the voxels it names and at most
    16 MB after them (to reach gzip's CRC check; imaging.io.GZIP_TRAILING_LIMIT), so a gzip bomb is
    never expanded."""
    try:
        with gzip.open(path, "rb") as handle:
            head = handle.read(NIFTI_HEADER_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnsupportedUpload(f"the gzip file is damaged or incomplete ({exc}); upload it again") from None
    if not is_nifti_header(head):
        raise UnsupportedUpload("this gzip file does not hold a NIfTI image; upload a .nii.gz or a zipped "
                                "DICOM series")
