"""File hashing and atomic writes shared by the store, weights, runs and exported bundles."""

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
