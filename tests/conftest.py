"""Shared test fixtures: small manifests written to temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# `make test` runs the suite in pytest-xdist workers, one per core: each worker's torch (and the
# commands its tests start) then takes its share of the cores, never all of them, so two workers
# do not oversubscribe the machine. Set before anything imports torch.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS
    _share = max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))

# Real MRI and the pROC reference values, copied into the repository (tests/data/README.md).
DATA = Path(__file__).resolve().parent / "data"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, relative path -> bytes: compare two to show a folder is byte-identical."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def siblings(folder: Path) -> list[str]:
    """Names in folder's parent: shows that no temporary sibling was left behind."""
    return sorted(p.name for p in Path(folder).parent.iterdir())


MANIFEST_HEADER = ["patient_id", "set", "image_t2", "roi_slice", "roi_row_min", "roi_col_min",
                   "roi_row_max", "roi_col_max", "label", "site", "level", "age", "sex"]


def write_manifest(folder: Path, rows: list[dict], header: list[str] | None = None,
                   make_images: bool = True) -> Path:
    """Write manifest.csv (and empty stand-in image files) into folder."""
    header = header or MANIFEST_HEADER
    folder.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join(str(row.get(c, "")) for c in header))
        image = row.get("image_t2")
        if make_images and image:
            (folder / image).parent.mkdir(parents=True, exist_ok=True)
            (folder / image).touch()
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def patient_row(index: int, *, set_name: str = "development", label: int = 0, **overrides) -> dict:
    row = {"patient_id": f"P{index:03d}", "set": set_name, "image_t2": f"images/P{index:03d}.nii.gz",
           "roi_slice": 7, "roi_row_min": 100, "roi_col_min": 80, "roi_row_max": 140,
           "roi_col_max": 120, "label": label, "site": "A" if set_name == "development" else "B",
           "level": "L1", "age": 70 + index % 10, "sex": "F" if index % 3 else "M"}
    row.update(overrides)
    return row


@pytest.fixture
def clean_manifest(tmp_path: Path) -> Path:
    rows = [patient_row(i, label=int(i % 3 == 0)) for i in range(20)]
    rows += [patient_row(100 + i, set_name="external", label=int(i % 2)) for i in range(6)]
    return write_manifest(tmp_path / "cohort", rows)


@pytest.fixture
def weights_home(tmp_path: Path, monkeypatch) -> Path:
    """A private $VCPRED_HOME so tests never see or write the user's stored weights."""
    home = tmp_path / "vcpred_home"
    monkeypatch.setenv("VCPRED_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny cohort with a prepared store written directly: (manifest, store, splits)."""
    from tiny_store import build_tiny_cohort
    return build_tiny_cohort(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def shared_workdir(tmp_path_factory) -> Path:
    """One folder per test session for the tiny runs, bundles and evaluation the session shares
    (fixtures `artefacts`, `report_artefacts`); pytest creates and cleans it."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="session")
def artefacts(shared_workdir):
    """The session's tiny cohort, trained runs and exported bundles (predict_support.SharedArtefacts):
    each built once, on first use; forgotten when the session ends."""
    from predict_support import SharedArtefacts

    shared = SharedArtefacts(shared_workdir)
    yield shared
    shared.clear()


@pytest.fixture(scope="session")
def report_artefacts(artefacts):
    """The session's small evaluation, exported models and report (report_support.ReportArtefacts),
    built once from `artefacts`' runs, on first use; forgotten when the session ends."""
    import report_support

    report = report_support.ReportArtefacts(artefacts)
    yield report
    report.clear()


@pytest.fixture(autouse=True)
def _console_not_quiet():
    """`main(["--quiet", ...])`, in a test or a shared fixture's setup, sets the process-wide console
    to quiet: reset it after each test, so a later test's expected notes are not silenced whatever
    order the tests run in (pytest-xdist changes it)."""
    from vcpred import console

    yield
    console._quiet = False


def pytest_collection_modifyitems(config, items):
    """Test files holding a `slow` test run first. `make test` hands whole files to its xdist workers
    in this order: the long files then start together and the short ones fill the gaps, instead of
    one long file starting last while the other worker idles."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within a file is kept
