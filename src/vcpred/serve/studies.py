"""Studies: one private folder and one state per loaded image, deleted on close or when idle.

Each study gets a random id (the only thing URLs and logs carry), a folder (mode 0700) under the
server's private temporary root, and a lock so that two requests on the same study do not
interleave. Studies never share state, so concurrent users cannot see each other's patient.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from vcpred.imaging import Volume
from vcpred.serve.errors import NotReady, StudyNotFound
from vcpred.serve.series import SeriesEntry


@dataclass
class Study:
    id: str
    folder: Path
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    root: Path | None = None  # where the series files were found (extracted upload or local folder)
    series: list[SeriesEntry] = field(default_factory=list)
    chosen: SeriesEntry | None = None
    image: Path | None = None  # what the prediction reads: a one-series DICOM folder or a NIfTI file
    volume: Volume | None = None
    prediction: object | None = None  # the last PatientPrediction

    def entry(self, series_id: str) -> SeriesEntry:
        for entry in self.series:
            if entry.id == series_id:
                return entry
        raise StudyNotFound(f"this study has no series {series_id!r}; it has "
                            f"{', '.join(e.id for e in self.series) or 'none'}")

    def require_volume(self) -> Volume:
        if self.volume is None:
            raise NotReady("choose a series first")
        return self.volume

    def require_prediction(self):
        if self.prediction is None:
            raise NotReady("no prediction yet for this study; submit the ROI and clinical values first")
        return self.prediction


class StudyStore:
    """The open studies of one server, under a private temporary root."""

    def __init__(self, timeout_s: float, parent: Path | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="vcpred-serve-", dir=parent))  # mode 0700
        # The server's shutdown calls close_all; this also removes the root of a store whose app
        # never ran (an app built and dropped, e.g. by a failed start) when it is collected or at exit.
        self._remove_root = weakref.finalize(self, shutil.rmtree, self.root, ignore_errors=True)
        self.timeout_s = timeout_s
        self._studies: dict[str, Study] = {}
        self._guard = threading.Lock()

    def create(self) -> Study:
        study_id = secrets.token_hex(16)  # unguessable; says nothing about the patient
        folder = self.root / study_id
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # whatever the umask
        study = Study(study_id, folder, time.monotonic())
        with self._guard:
            self._studies[study_id] = study
        return study

    def get(self, study_id: str) -> Study:
        with self._guard:
            study = self._studies.get(study_id)
        if study is None:
            raise StudyNotFound("no such study: it was closed, timed out after "
                                f"{self.timeout_s / 60:.0f} minutes idle, or the server restarted; load it again")
        study.last_used = time.monotonic()
        return study

    def close(self, study_id: str) -> bool:
        """Forget the study and delete its folder (waits for a request running on it)."""
        with self._guard:
            study = self._studies.pop(study_id, None)
        if study is None:
            return False
        with study.lock:
            shutil.rmtree(study.folder, ignore_errors=True)
            study.volume = study.prediction = None
        return True

    def reap(self, now: float | None = None) -> list[str]:
        """Close the studies idle for longer than the timeout (not those busy right now)."""
        now = time.monotonic() if now is None else now
        with self._guard:
            idle = [s for s in self._studies.values() if now - s.last_used > self.timeout_s]
        closed = []
        for study in idle:
            if not study.lock.locked() and self.close(study.id):
                closed.append(study.id)
        return closed

    def __len__(self) -> int:
        return len(self._studies)

    def close_all(self) -> None:
        for study_id in list(self._studies):
            self.close(study_id)
        self._remove_root()
