"""vcpred synth through the command line: summary output, clear errors, --force rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcpred.cli import main
from vcpred.errors import ConfigError, VcpredError
from vcpred.synth import generate_cohort

TINY = ["--development", "2", "--external", "1", "--sequences", "t2", "--size", "48"]


def test_cli_writes_cohort_and_prints_summary(tmp_path: Path, capsys):
    out = tmp_path / "cohort"
    assert main(["synth", "--out", str(out), "--format", "nifti", *TINY]) == 0
    text = capsys.readouterr().out
    assert "wrote 3 synthetic patients" in text
    assert "development" in text and "external" in text and "Bayes AUC" in text and "prevalence" in text
    assert (out / "manifest.csv").is_file() and (out / "truth.csv").is_file()
    assert sorted(p.name for p in (out / "images").iterdir()) == ["dev0001", "dev0002", "ext0001"]
    assert (out / "images" / "dev0001" / "t2.nii.gz").is_file()
    assert main(["cohort", "check", str(out / "manifest.csv")]) == 0


@pytest.mark.parametrize("arguments, message", [
    (["--development", "-1"], "number of development patients must be a whole number >= 0"),
    (["--external", "-3"], "number of external patients must be a whole number >= 0"),
    (["--development", "0", "--external", "0"], "no patients to generate"),
    (["--sequences", "t2,flair"], "can only make t1 and t2"),
    (["--sequences", "t2,t2"], "listed twice"),
    (["--jobs", "0"], "jobs must be a whole number >= 1"),
    (["--seed", "-1"], "seed must be a whole number >= 0"),
])
def test_cli_invalid_arguments_exit_2_with_one_line(tmp_path: Path, capsys, arguments, message):
    out = tmp_path / "cohort"
    base = ["--development", "1", "--external", "1", "--size", "48"]
    assert main(["synth", "--out", str(out), *base, *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())   # nothing written


def test_unknown_format_and_sequence_through_the_api(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown image format 'png'; use one of: dicom, nifti"):
        generate_cohort(tmp_path / "a", n_development=1, fmt="png")
    with pytest.raises(ConfigError, match="only make t1 and t2"):
        generate_cohort(tmp_path / "a", n_development=1, sequences=("stir",))
    with pytest.raises(ConfigError, match="development patients"):
        generate_cohort(tmp_path / "a", n_development=2.5)


def test_unwritable_output_under_a_file(tmp_path: Path, capsys):
    blocker = tmp_path / "a_file.txt"
    blocker.write_text("not a folder")
    assert main(["synth", "--out", str(blocker / "cohort"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot create output folder") and "choose a folder you can write to" in err
    assert main(["synth", "--out", str(blocker), *TINY]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


def test_a_user_folder_is_refused_and_force_replaces_only_an_earlier_cohort(tmp_path: Path):
    out = tmp_path / "cohort"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for force in (False, True):  # vcpred never writes into a folder it did not write
        with pytest.raises(VcpredError, match="not empty.*choose a new or empty folder"):
            generate_cohort(out, n_development=1, n_external=0, sequences=["t2"], size=48, force=force)
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
    out = tmp_path / "cohort2"
    generate_cohort(out, n_development=2, n_external=0, sequences=["t2"], size=48)
    assert (out / "images" / "dev0002").is_dir()
    with pytest.raises(VcpredError, match="earlier `vcpred synth` cohort; pass --force"):
        generate_cohort(out, n_development=1, n_external=0, sequences=["t2"], size=48)
    # Rerun smaller with --force: the earlier cohort is replaced as a whole.
    generate_cohort(out, n_development=1, n_external=0, sequences=["t2"], size=48, force=True)
    assert not (out / "images" / "dev0002").exists() and (out / "images" / "dev0001").is_dir()
    assert (out / "manifest.csv").read_text().count("\n") == 2
    # Files the user put beside the cohort are never deleted: --force refuses and names them.
    (out / "store").mkdir()
    (out / "store" / "index.json").write_text("{}")
    with pytest.raises(VcpredError, match="store/index.json"):
        generate_cohort(out, n_development=1, n_external=0, sequences=["t2"], size=48, force=True)
    assert (out / "store" / "index.json").read_text() == "{}" and (out / "manifest.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort", "cohort2"]


def test_cli_unknown_format_is_a_usage_error(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--out", str(tmp_path / "x"), "--format", "png"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'png'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
