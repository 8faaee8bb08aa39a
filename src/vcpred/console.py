"""Output to the person at the terminal: messages, warnings, progress bars; quiet under --quiet."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
log = logging.getLogger("vcpred")
_quiet = False


def configure(*, quiet: bool = False, debug: bool = False) -> None:
    """Set verbosity for the whole process (called once by the CLI)."""
    global _quiet
    _quiet = quiet
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    log.setLevel(level)
    # INFO is for vcpred's own lines. torch sets its loggers to WARNING at the end of its import; a
    # SIGTERM or Ctrl-C during that import left them at our INFO, and torch's exit-time
    # "FakeTensor cache stats" followed "error: interrupted". Set it first (torch's import, TORCH_LOGS
    # included, sets its own level over this).
    torch_log = logging.getLogger("torch")
    if torch_log.level == logging.NOTSET:
        torch_log.setLevel(max(level, logging.WARNING))


def is_quiet() -> bool:
    return _quiet


def say(message: str) -> None:
    """A result line for the user on stdout (suppressed by --quiet)."""
    if not _quiet:
        print(message, flush=True)


def warn(message: str) -> None:
    log.warning(message)


def progress_disabled() -> bool:
    """No bars under --quiet, in CI logs, or when stderr is not a terminal."""
    return _quiet or bool(os.environ.get("CI")) or not sys.stderr.isatty()


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """A progress bar on stderr; none under --quiet, in CI logs, or when stderr is not a terminal."""
    return iter(tqdm(items, total=total, desc=desc, disable=progress_disabled(), leave=False))
