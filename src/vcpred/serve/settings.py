"""Limits and options of one `vcpred serve` process (docs/serve.md, "Limits")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
# A volume larger than this is refused from its header, before any voxel is read: 64 Mi voxels
# (1024 x 1024 x 64, or 512 x 512 x 256; 256 MiB as float32) and 2048 voxels a side. Real sagittal
# spine MRI is at most about 1024 x 1024 x 30 (2D) or 512 x 512 x 200 (3D): docs/serve.md.
MAX_VOXELS = 64 * 2**20
MAX_DIMENSION = 2048
# DICOM frames (slices) one upload's headers may declare in all: as many as the zip may hold files
# (a study at the member cap of classic files). Each file is judged on its own by the reader; this
# bounds their sum, since the reader builds a header for every declared frame (~0.5 ms each).
MAX_FRAMES = 5000


@dataclass(frozen=True)
class ServeSettings:
    """max_upload_mb: largest accepted upload; max_unpacked_mb / max_members / max_ratio: what a
    zip (or .nii.gz) may expand to, against zip bombs (max_ratio over the whole archive and per
    member); max_voxels / max_dimension: the largest volume read (from its header, before reading
    it); max_frames: the DICOM frames an upload's headers may declare in all; max_studies: studies open at once (the oldest idle one is closed for a new one);
    max_predictions: predictions running or waiting (one runs at a time); max_json_bytes: largest
    JSON request body; study_timeout_s: idle seconds after which a study and its files are deleted;
    upload_idle_timeout_s / upload_timeout_s: a request body that sends nothing for this long, or
    is not complete after this long, is answered 408 (a stalled client holds no study slot: a study
    counts only once its upload has arrived);
    host / port / allow_hosts: the names the page may be reached by (the Host header; port None:
    any port); token: the secret every request must carry (as the cookie the printed address sets;
    serve/access.py), None for a loopback server; data_dir: local folder whose studies the page may open; workdir: where the private
    study folders go (None: the system's temporary folder)."""

    max_upload_mb: float = 512
    max_unpacked_mb: float = 2048
    max_members: int = 5000
    max_ratio: float = 200.0
    max_voxels: int = MAX_VOXELS
    max_dimension: int = MAX_DIMENSION
    max_frames: int = MAX_FRAMES
    max_studies: int = 8
    max_predictions: int = 4
    max_json_bytes: int = 64 * 1024
    study_timeout_s: float = 1800.0
    upload_idle_timeout_s: float = 30.0
    upload_timeout_s: float = 1800.0
    host: str = "127.0.0.1"
    port: int | None = None
    allow_hosts: tuple[str, ...] = ()
    data_dir: Path | None = None
    workdir: Path | None = None
    token: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def max_unpacked_bytes(self) -> int:
        return int(self.max_unpacked_mb * MB)
