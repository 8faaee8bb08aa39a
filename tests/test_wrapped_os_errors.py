"""A full disk reported through a library's own exception (safetensors: SafetensorError wrapping Rust's
io::Error, "(os error 28)") is the one-line `error: ...`, exit 2, every other command gives, not
"internal error" (issue 27)."""

from __future__ import annotations

import errno

import pytest
from safetensors import SafetensorError

from conftest import siblings
from vcpred import os_errors
from vcpred.cli import main

CNN = dict(backbone="resnet_test", method="lora")
# What safetensors 0.8 raises when the disk fills while it writes (its message for any io::Error)
FULL = 'Error while serializing: I/O error: No space left on device (os error 28) at path "{path}/.tmpAbC123"'


def test_a_wrapped_full_disk_is_described_like_an_oserror(tmp_path):
    wrapped = SafetensorError(FULL.format(path=tmp_path))
    assert os_errors.is_user_os_error(wrapped)
    message = os_errors.describe(wrapped, where="out")
    assert message.startswith(f"{tmp_path}: no space left on the device (ENOSPC)")
    without_path = SafetensorError("Error while serializing: I/O error: Disk quota exceeded (os error 122)")
    assert os_errors.describe(without_path, where="out") == os_errors.describe(OSError(errno.EDQUOT, "x"), where="out")


@pytest.mark.parametrize("text", ["Error while serializing: InvalidTensorView", "shape mismatch (os error 2x)",
                                  "I/O error: No such file or directory (os error 2)"])
def test_other_library_errors_stay_bug_reports(text):
    assert os_errors.describe(SafetensorError(text)) is None and not os_errors.is_user_os_error(SafetensorError(text))


def test_a_full_disk_while_export_writes_the_weights_is_one_line_exit_2(artefacts, tmp_path, monkeypatch, capsys):
    import vcpred.bundle.export as export

    runs = artefacts.trained_runs("resnetlora", **CNN)
    out = tmp_path / "model"

    def full_disk(state, path, *args, **kwargs):
        raise SafetensorError(FULL.format(path=tmp_path))

    monkeypatch.setattr(export, "save_file", full_disk)
    code = main(["export", str(runs), "--configuration", "resnetlora", "--out", str(out), "--bf16-check-patients", "0"])

    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "no space left on the device (ENOSPC)" in err and "internal error" not in err
    assert not out.exists() and siblings(out) == []
