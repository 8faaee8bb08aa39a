"""One writer at a time: file locks for the prepared store, run dirs and an experiment's status file.

`held(path, what)` takes an exclusive lock on `path` (a small lock file next to what it protects;
filelock, flock on Linux) without waiting: a second process gets `Busy`, an `error:` line that
names the holder (pid, host, since when; written into the lock file when it is taken). The lock
file is removed on release (while still held: filelock retries on an unlinked file), so nothing is
left beside the folder. The operating system drops the lock when its process ends, SIGKILL
included, so a crash never leaves a folder locked (only a lock file naming a process that is gone).
`waiting(path)` is the same lock but waits for it (short critical sections).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from vcpred.errors import VcpredError


class Busy(VcpredError):
    """Another process holds the lock of what this command would write."""


def _mark(descriptor: int) -> None:
    """Write who holds the lock into the lock file (read by the process that finds it busy)."""
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.write(descriptor, json.dumps(record).encode())


def holder(path: Path) -> str:
    """'pid N on HOST since T' from the lock file, or 'another process' when it says nothing."""
    try:
        record = json.loads(Path(path).read_text())
        return f"pid {record['pid']} on {record['host']} since {record['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _lock(path: Path, timeout: float) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout, is_singleton=False, on_acquired=_mark)


@contextmanager
def held(path: str | Path, what: str, hint: str = "") -> Iterator[None]:
    """Hold the lock at `path` for the block, or raise Busy at once: '{what} is in use by {holder}{hint}'."""
    path = Path(path)
    try:
        lock = _lock(path, 0)
        lock.acquire()
    except Timeout:
        raise Busy(f"{what} is in use by {holder(path)}{hint}") from None
    except OSError as exc:
        raise VcpredError(f"cannot lock {what} ({path}: {exc.strerror or exc}); choose a folder you can write "
                          "to") from None
    try:
        yield
    finally:
        try:
            os.unlink(path)  # still ours; a process that opened it meanwhile finds it unlinked and tries again
        except OSError:
            pass
        lock.release()


def process_alive(pid: int) -> bool:
    """Whether a process of this host with this pid runs (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def recorded_holder(path: str | Path) -> str | None:
    """Who holds the lock at `path` by its record, without touching the lock (taking it to find out
    could make its real holder fail): None when nobody does, or when the recorded process of this
    host is gone (killed before it could clear the record). A holder on another host is believed."""
    try:
        record = json.loads(Path(path).read_text())
        pid, host = int(record["pid"]), str(record["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host == socket.gethostname() and not process_alive(pid):
        return None
    return holder(Path(path))


@contextmanager
def waiting(path: str | Path) -> Iterator[None]:
    """Hold the lock at `path` for the block, waiting for it as long as another process holds it."""
    path = Path(path)
    lock = _lock(path, -1)
    with lock:
        try:
            yield
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
