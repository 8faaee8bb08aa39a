"""File hashing and atomic writes shared by the store, weights, runs and exported bundles; the digest
of an image input (a file, a zip or a DICOM folder) shared by `cohort check` and the bundle's known
patients."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vcpred.permissions import plain_mode


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB chunks (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def input_digest(path: str | Path) -> str | None:
    """The digest of one image input: of a file (a NIfTI, a zip, a DICOM file), the sha256 of its
    bytes; of a DICOM folder, the sha256 of its files' sorted sha256s (file names and paths do not
    count). None when it is missing, unreadable or empty."""
    path = Path(path)
    try:
        if path.is_dir():
            digests = sorted(sha256_file(f) for f in path.rglob("*") if f.is_file() and f.stat().st_size)
            return hashlib.sha256("\n".join(digests).encode()).hexdigest() if digests else None
        return sha256_file(path) if path.is_file() and path.stat().st_size else None
    except (OSError, RuntimeError):  # unreadable, or a loop of symbolic links
        return None


def input_sizes(path: str | Path) -> tuple | None:
    """What two inputs with one input_digest must share, from stat alone: a file's size, a folder's
    sorted sizes of its non-empty files. None where input_digest is None (missing, unreadable, empty).
    Only inputs with equal sizes need hashing to be compared."""
    path = Path(path)
    try:
        if path.is_dir():
            sizes = sorted(size for f in path.rglob("*") if f.is_file() and (size := f.stat().st_size))
            return ("folder", *sizes) if sizes else None
        return ("file", path.stat().st_size) if path.is_file() and path.stat().st_size else None
    except (OSError, RuntimeError):
        return None


def sha256_files(root: Path, relative: list[str]) -> dict[str, str]:
    """sha256 per file under root; two threads (hashlib releases the GIL on large buffers)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(relative, pool.map(lambda r: sha256_file(Path(root) / r), relative)))


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call write(temporary_path) then rename onto path (atomic on one file system)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        plain_mode(Path(temporary))  # mkstemp's 0600 -> what the umask gives; a writer may set its own
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
