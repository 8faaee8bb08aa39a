"""Limits and options of one `vcpred serve` process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeSettings:
    """max_upload_mb: largest accepted upload; max_unpacked_mb / max_members / max_ratio: what a
    zip (or .nii.gz) may expand to, against zip bombs; study_timeout_s: idle seconds after which
    a study and its files are deleted; data_dir: local folder whose studies the page may open;
    workdir: where the private study folders go (None: a new private temporary folder)."""

    max_upload_mb: float = 512
    max_unpacked_mb: float = 2048
    max_members: int = 5000
    max_ratio: float = 200.0
    study_timeout_s: float = 1800.0
    data_dir: Path | None = None
    workdir: Path | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def max_unpacked_bytes(self) -> int:
        return int(self.max_unpacked_mb * MB)
