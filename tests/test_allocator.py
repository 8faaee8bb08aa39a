"""vcpred.allocator: freed megabyte-size blocks stay in the process instead of being page-faulted
and zeroed again on the next allocation (glibc; issue 17's first-pass warm-up)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocate 64 blocks of 1 MiB, write them, free them all, and count the minor page faults of doing
# it again: freeing returns the memory to the kernel unless it is kept.
ROUND_TRIP = """
import ctypes, ctypes.util, resource, sys
from vcpred.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
def round_trip():
    blocks = [libc.malloc(2**20) for _ in range(64)]
    for block in blocks:
        ctypes.memset(block, 1, 2**20)
    for block in blocks:
        libc.free(block)
round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
round_trip()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_the_second_round(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", ROUND_TRIP, mode], capture_output=True, text=True, check=True)
    kept, faults = out.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc thresholds")
def test_freed_blocks_are_reused_without_new_page_faults():
    _, default_faults = faults_of_the_second_round("default")
    kept, faults = faults_of_the_second_round("keep")
    if kept != "True":
        pytest.skip("this C library has no glibc mallopt")
    assert default_faults > 10_000  # 64 MiB came back from the kernel: one fault per 4 KiB page
    assert faults < 500  # the same memory, reused


def test_the_command_line_keeps_freed_memory(monkeypatch):
    from vcpred import cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or True)
    assert cli.main(["cohort", "check", "missing.csv"]) == 2
    assert calls == [1]
