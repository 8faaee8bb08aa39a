"""Where runs live: RUNS/<configuration>/split-<KK>/ (two digits, more when there are 100 splits)."""

from __future__ import annotations

import re
from pathlib import Path

SPLIT_DIR = re.compile(r"^split-(\d+)$")


def split_dir_name(split: int) -> str:
    return f"split-{split:02d}"


def run_path(runs: str | Path, configuration: str, split: int) -> Path:
    """The run dir of one configuration on one split."""
    return Path(runs) / configuration / split_dir_name(split)


def split_of(path: Path) -> int:
    """The split number a run dir's name says (ValueError when it is not a split-<KK> name)."""
    match = SPLIT_DIR.match(path.name)
    if not match:
        raise ValueError(f"{path} is not a split-<KK> run dir")
    return int(match.group(1))


def configuration_run_dirs(folder: Path) -> list[Path]:
    """The split-<KK> run dirs of one configuration folder, in name order."""
    return sorted(p for p in Path(folder).glob("split-*") if p.is_dir() and SPLIT_DIR.match(p.name))


def run_dirs(runs: str | Path) -> list[Path]:
    """Every <configuration>/split-<KK> run dir under RUNS, in name order."""
    return sorted(p for p in Path(runs).glob("*/split-*") if p.is_dir() and SPLIT_DIR.match(p.name))


def run_label(path: Path) -> str:
    """'<configuration>/split-<KK>', how messages name a run."""
    return f"{path.parent.name}/{path.name}"
