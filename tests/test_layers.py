"""The import-layers contract in pyproject.toml ([tool.importlinter]; `make test` runs lint-imports):
a module may import only from its own layer or those below, imports inside functions included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports with the repository's contract over the vcpred package found in tree."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def tree(tmp_path) -> Path:
    shutil.copytree(REPO / "src" / "vcpred", tmp_path / "vcpred", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_package_keeps_its_layers(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module,planted", [
    ("errors.py", "import vcpred.cli"),  # a shared helper importing the command line
    ("models/spec.py", "def later():\n    from vcpred.report import gallery  # inside a function\n"),
])
def test_an_upward_import_breaks_the_contract(tree, module, planted):
    path = tree / "vcpred" / module
    path.write_text(path.read_text() + "\n" + planted + "\n")
    result = lint(tree)
    assert result.returncode != 0
    lower = "vcpred." + module.removesuffix(".py").replace("/", ".").split(".")[0]
    assert f"{lower} is not allowed to import" in result.stdout, result.stdout
