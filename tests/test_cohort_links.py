"""An image path that is a loop of symbolic links is a problem on its row, not an internal error (issue 27)."""

from __future__ import annotations

from conftest import patient_row, write_manifest
from vcpred.cli import main
from vcpred.cohort import check_manifest


def _manifest_with_a_loop(tmp_path):
    rows = [patient_row(i, label=int(i % 3 == 0)) for i in range(6)]
    rows[1]["image_t2"] = "images/loop.nii.gz"
    manifest = write_manifest(tmp_path / "cohort", rows, make_images=True)
    images = tmp_path / "cohort" / "images"
    (images / "loop.nii.gz").unlink()
    (images / "loop.nii.gz").symlink_to(images / "other.nii.gz")
    (images / "other.nii.gz").symlink_to(images / "loop.nii.gz")
    return manifest


def test_a_symlink_loop_is_a_problem_on_its_row(tmp_path):
    result = check_manifest(_manifest_with_a_loop(tmp_path))

    [problem] = [p for p in result.problems if p.column == "image_t2"]
    assert problem.row == 3 and "loop of symbolic links" in problem.message and "images/loop.nii.gz" in problem.message


def test_cohort_check_reports_it_without_an_internal_error(tmp_path, capsys):
    assert main(["cohort", "check", str(_manifest_with_a_loop(tmp_path))]) != 0
    printed = capsys.readouterr()
    assert "internal error" not in printed.err and "loop of symbolic links" in printed.out + printed.err
