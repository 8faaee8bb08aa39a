"""A DICOM header that declares more than the reader will read (issue 27): NumberOfFrames = 10^9 in
a ~150 KB file used to build one frame header per declared frame before any budget was checked
(minutes of CPU, memory growing). The declared size is judged from the header first, wherever the
reader is used: prepare, cohort init, annotate and the viewer's uploads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from dicom_variants import write_enhanced
from imaging_support import small_volume
from vcpred.errors import ImageReadError
from vcpred.imaging import dicom, read_volume

HUGE = 1_000_000_000


def no_frame_headers(*args):
    raise AssertionError("a frame header was built for a header the reader should have refused first")


def declaring(path: Path, frames: int, *, keep_groups: bool = False) -> Path:
    """A small enhanced file whose header declares `frames` frames (its pixel data is unchanged)."""
    write_enhanced(path, small_volume())
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = frames
    if not keep_groups:
        del ds.PerFrameFunctionalGroupsSequence
    ds.save_as(path)
    return path


@pytest.mark.parametrize("frames", [HUGE, 100_000])
def test_a_header_declaring_too_many_frames_is_refused_before_any_frame_header_is_built(tmp_path, monkeypatch,
                                                                                        frames):
    path = declaring(tmp_path / "s" / "IM0001", frames)
    monkeypatch.setattr(dicom, "_frame_dataset", no_frame_headers)
    with pytest.raises(ImageReadError, match=rf"IM0001: the header declares {frames} frames? of \d+ x \d+ pixels"):
        read_volume(path.parent)
    with pytest.raises(ImageReadError, match="NumberOfFrames"):
        dicom.discover_series(path.parent)


def test_a_header_declaring_more_pixels_than_its_file_holds_is_refused(tmp_path, monkeypatch):
    path = declaring(tmp_path / "s" / "IM0001", 1000)  # within the budget, but the file holds far fewer
    monkeypatch.setattr(dicom, "_frame_dataset", no_frame_headers)
    with pytest.raises(ImageReadError, match="more pixel data than the file holds"):
        read_volume(path.parent)


def test_a_true_multiframe_file_is_still_read(tmp_path):
    volume = small_volume()
    path = write_enhanced(tmp_path / "s" / "IM0001", volume)
    assert read_volume(path.parent).shape == volume.shape


BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_CPU, (30, 30))
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
from pathlib import Path
from vcpred.cohort.from_dicom import list_series
from vcpred.errors import VcpredError
from vcpred.imaging import read_volume
from vcpred.serve.series import dicom_series
from vcpred.serve.settings import ServeSettings
folder = Path(sys.argv[1])
# prepare and annotate (read_volume), cohort init (list_series), the viewer's uploads (dicom_series)
for read in (lambda: read_volume(folder), lambda: list_series(folder), lambda: dicom_series(folder, ServeSettings())):
    try:
        read()
    except VcpredError as exc:
        print("refused:", exc)
"""


def test_the_huge_header_is_refused_under_a_cpu_and_memory_bound(tmp_path):
    """The fuzz case in a child process held to 30 s of CPU and 3 GiB: a regression is killed (and
    fails here), never a hung test run."""
    path = declaring(tmp_path / "s" / "IM0001", HUGE)
    done = subprocess.run([sys.executable, "-c", BOUNDED, str(path.parent)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.count("refused:") == 3 and "1000000000 frames" in done.stdout, done.stdout
