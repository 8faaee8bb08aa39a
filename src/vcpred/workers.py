"""Worker processes that never outlive their command, and SIGTERM treated like Ctrl-C.

`prepare`, `synth` and `experiment` fan work out to a process pool. Without care, killing the
command leaves its workers writing (SIGKILL of the parent) or waiting forever for running tasks
(Ctrl-C or SIGTERM while the pool shuts down). Here:
- every worker asks the kernel to kill it when its parent dies (Linux prctl PR_SET_PDEATHSIG), and
  exits at once if the parent was already gone when it started;
- `worker_pool(...)` kills its workers when the block is left by an exception (Ctrl-C, SIGTERM,
  an error) instead of waiting for their running tasks: every result is written beside and swapped
  in (vcpred.output_folder, atomic file writes), so a killed task leaves nothing half-written in use;
- `interrupt_on_sigterm()` makes SIGTERM raise KeyboardInterrupt in the main thread, so the CLI
  answers `error: interrupted`, exit 130, after the same clean-up as for Ctrl-C.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """Called first in a worker: killed with the parent from now on; gone now if it already died."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _start_worker(parent: int, initializer: Callable | None, initargs: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor cannot stop tasks that are already running; its processes are private.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()


@contextmanager
def worker_pool(jobs: int, *, initializer: Callable | None = None, initargs: tuple = (),
                mp_context=None) -> Iterator[ProcessPoolExecutor]:
    """A ProcessPoolExecutor of `jobs` workers that die with this process and are killed, not
    waited for, when the block ends with an exception."""
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp_context, initializer=_start_worker,
                               initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        _kill_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_in_thread(name: str, function: Callable, *args) -> Future:
    """function(*args) started in a thread of its own; the Future gives its result or raises what
    it raised. For work that can overlap the imports of torch and timm (it must not need them)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix=f"vcpred-{name}")
    try:
        return pool.submit(function, *args)
    finally:
        pool.shutdown(wait=False)  # the thread ends when the work does
