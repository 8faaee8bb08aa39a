"""Studies: one private folder and one state per loaded image, deleted on close or when idle.

Each study gets a random id (the only thing URLs and logs carry), a folder (mode 0700) under the
server's private root, and a lock so that two requests on the same study do not interleave.
Studies never share state, so concurrent users cannot see each other's patient.

The private root is named `vcpred-serve-<host>-<pid>-<random>` and holds `owner.json` (pid, host,
the process's start time): a server killed with SIGKILL cannot delete its folders, so every new
server first deletes the roots (in the same parent folder, of the same user and host) whose owner
process is gone. At most `max_studies` are open: a new one closes the least recently used idle
study, or is refused (429) when every open study is busy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from vcpred.imaging import Volume
from vcpred.serve.errors import NotReady, ServeError, StudyNotFound
from vcpred.serve.series import SeriesEntry

OWNER_FILE = "owner.json"
ROOT_NAME = re.compile(r"^vcpred-serve-(?P<host>.+)-(?P<pid>\d+)-(?P<tag>[A-Za-z0-9_]+)$")
log = logging.getLogger("vcpred.serve")


class TooManyStudies(ServeError):
    status = 429


def host_label(host: str | None = None) -> str:
    """This machine's name as it appears in root folder names."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", host if host is not None else socket.gethostname())[:40] or "host"


def private_prefix(pid: int | None = None, host: str | None = None) -> str:
    """The name a server's private root starts with (random characters follow)."""
    return f"vcpred-serve-{host_label(host)}-{os.getpid() if pid is None else pid}-"


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): tells a pid
    reused by a new process from the server that held it. None without /proc or such a process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def owner_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: not a server of ours unless told otherwise
        return start is None
    if start is not None:
        now = process_start(pid)
        return now is None or now == start
    return True


def sweep_dead_roots(parent: Path) -> list[Path]:
    """Delete the private roots in parent left by servers of this user and host that are gone
    (killed: they could not clean up). Roots of live servers, other users or other hosts stay."""
    swept, me = [], host_label()
    try:
        candidates = list(parent.iterdir())
    except OSError:
        return swept
    for path in candidates:
        match = ROOT_NAME.match(path.name)
        if not match or match["host"] != me:
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or info.st_uid != getattr(os, "getuid", lambda: info.st_uid)():
            continue
        pid = int(match["pid"])
        try:
            owner = json.loads((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            owner = {}  # being created right now (its owner lives), or damaged
        start = owner.get("start") if isinstance(owner, dict) and owner.get("pid") == pid else None
        if owner_alive(pid, start):
            continue
        shutil.rmtree(path, ignore_errors=True)
        swept.append(path)
    if swept:
        log.warning("deleted %d study folder(s) left by a vcpred serve that was killed", len(swept))
    return swept


def private_root(parent: Path | None) -> Path:
    """A new private root (mode 0700) marked with this process, after sweeping dead ones."""
    parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    sweep_dead_roots(parent)
    root = Path(tempfile.mkdtemp(prefix=private_prefix(), dir=parent))  # mode 0700
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid()),
             "created": time.time()}
    descriptor = os.open(root / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(owner, handle)
    return root


@dataclass
class Study:
    id: str
    folder: Path
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # requests holding the study (a busy study is never closed to make room)
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

    @property
    def busy(self) -> bool:
        return self.users > 0 or self.lock.locked()


class StudyStore:
    """The open studies of one server, under a private root (see the module docstring)."""

    def __init__(self, timeout_s: float, parent: Path | None = None, max_studies: int = 8):
        self.root = private_root(parent)
        # The server's shutdown calls close_all; this also removes the root of a store whose app
        # never ran (an app built and dropped, e.g. by a failed start) when it is collected or at exit.
        self._remove_root = weakref.finalize(self, shutil.rmtree, self.root, ignore_errors=True)
        self.timeout_s = timeout_s
        self.max_studies = max_studies
        self._studies: dict[str, Study] = {}
        self._guard = threading.Lock()

    def new_folder(self) -> Path:
        """A new private study folder (mode 0700, an unguessable name that says nothing about the
        patient) not yet counted as an open study: create(folder) makes it one."""
        folder = self.root / secrets.token_hex(16)
        folder.mkdir(mode=0o700)
        os.chmod(folder, 0o700)  # whatever the umask
        return folder

    def create(self, folder: Path | None = None) -> Study:
        """A new study (in folder, from new_folder, or a new one) held by the caller (release it when
        done); closes the least recently used idle study when max_studies are open, TooManyStudies
        when all of them are busy."""
        with self._guard:
            victim = None
            if len(self._studies) >= self.max_studies:
                idle = [s for s in self._studies.values() if not s.busy]
                if not idle:
                    raise TooManyStudies(f"{len(self._studies)} studies are open and busy, the most this server "
                                         "keeps (vcpred serve --max-studies); close one or wait, then try again")
                victim = min(idle, key=lambda s: s.last_used)
                del self._studies[victim.id]
            folder = folder or self.new_folder()
            study = Study(folder.name, folder, time.monotonic(), users=1)
            self._studies[study.id] = study
        if victim is not None:
            log.info("closed the least recently used study to open a new one (%d open at most)", self.max_studies)
            self._delete(victim)
        return study

    def get(self, study_id: str, *, hold: bool = False) -> Study:
        """The open study (hold: marked busy, release it when done); StudyNotFound otherwise."""
        with self._guard:
            study = self._studies.get(study_id)
            if study is not None:
                study.last_used = time.monotonic()
                study.users += hold
        if study is None:
            raise StudyNotFound("no such study: it was closed, timed out after "
                                f"{self.timeout_s / 60:.0f} minutes idle, closed to make room for newer studies, "
                                "or the server restarted; load it again")
        return study

    @contextlib.contextmanager
    def using(self, study_id: str):
        """The study, marked busy while the caller works on it."""
        study = self.get(study_id, hold=True)
        try:
            yield study
        finally:
            self.release(study)

    def release(self, study: Study) -> None:
        with self._guard:
            study.users -= 1
            study.last_used = time.monotonic()

    def close(self, study_id: str) -> bool:
        """Forget the study and delete its folder (waits for a request running on it)."""
        with self._guard:
            study = self._studies.pop(study_id, None)
        if study is None:
            return False
        self._delete(study)
        return True

    @staticmethod
    def _delete(study: Study) -> None:
        with study.lock:
            shutil.rmtree(study.folder, ignore_errors=True)
            study.volume = study.prediction = None

    def reap(self, now: float | None = None) -> list[str]:
        """Close the studies idle for longer than the timeout (not those busy right now)."""
        now = time.monotonic() if now is None else now
        with self._guard:
            idle = [s for s in self._studies.values() if now - s.last_used > self.timeout_s]
        closed = []
        for study in idle:
            if not study.busy and self.close(study.id):
                closed.append(study.id)
        return closed

    def __len__(self) -> int:
        return len(self._studies)

    def ids(self) -> list[str]:
        with self._guard:
            return list(self._studies)

    def close_all(self) -> None:
        for study_id in list(self._studies):
            self.close(study_id)
        self._remove_root()
