"""vcpred.stats compared live with R's pROC on random data with many ties (skipped without R)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vcpred.stats import delong_ci, delong_test, youden_threshold

R_SCRIPT = r"""
suppressMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
out <- NULL
for (k in unique(d$dataset)) {
  s <- d[d$dataset == k, ]
  ra <- roc(s$y, s$a, direction = "<", levels = c(0, 1), quiet = TRUE)
  rb <- roc(s$y, s$b, direction = "<", levels = c(0, 1), quiet = TRUE)
  ci <- as.numeric(ci.auc(ra, method = "delong"))
  t <- suppressWarnings(roc.test(ra, rb, method = "delong", paired = TRUE))
  best <- coords(ra, "best", best.method = "youden", transpose = FALSE)
  out <- rbind(out, data.frame(dataset = k, auc = ci[2], low = ci[1], high = ci[3],
    z = unname(t$statistic), p = t$p.value, dlow = t$conf.int[1], dhigh = t$conf.int[2],
    thr = best$threshold[1], sens = best$sensitivity[1], spec = best$specificity[1],
    nbest = nrow(best)))
}
write.csv(out, args[2], row.names = FALSE)
"""


def _has_proc() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(pROC)"], capture_output=True, timeout=60)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _has_proc(), reason="Rscript with pROC is not installed")


def _random_sets(rng: np.random.Generator, count: int) -> pd.DataFrame:
    frames = []
    for k in range(count):
        n = int(rng.integers(8, 80))
        y = np.r_[0, 0, 1, 1, rng.integers(0, 2, n - 4)]
        levels = int(rng.integers(2, 12))  # few distinct values: heavy ties
        a = rng.integers(0, levels, n) + y * rng.integers(0, 3)
        b = np.round(rng.normal(y * 0.8, 1.0, n), 1)
        frames.append(pd.DataFrame({"dataset": k, "y": y, "a": a.astype(float), "b": b}))
    return pd.concat(frames, ignore_index=True)


def test_live_against_proc(tmp_path: Path):
    data = _random_sets(np.random.default_rng(2024), 30)
    data.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "compare.R").write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(tmp_path / "compare.R"), str(tmp_path / "in.csv"),
                    str(tmp_path / "out.csv")], check=True, capture_output=True, timeout=120)
    want = pd.read_csv(tmp_path / "out.csv").set_index("dataset")
    worst = 0.0
    for k, s in data.groupby("dataset"):
        w = want.loc[k]
        auc, low, high = delong_ci(s.y, s.a)
        test = delong_test(s.y, s.a, s.b)
        thr, sens, spec = youden_threshold(s.y, s.a)
        got = [auc, low, high, test.z, test.p_value, test.diff_ci_low, test.diff_ci_high, thr, sens, spec]
        ref = [w.auc, w.low, w.high, w.z, w.p, w.dlow, w.dhigh, w.thr, w.sens, w.spec]
        got, ref = np.asarray(got, float), np.asarray(ref, float)
        with np.errstate(invalid="ignore"):  # -inf thresholds compare equal, not inf - inf
            errors = np.where(got == ref, 0.0, np.abs(got - ref))
        worst = max(worst, float(errors.max()))
        assert errors.max() < 1e-9, (k, got, ref)
    assert (want.nbest > 1).any(), "no dataset exercised tied Youden maxima"
    print(f"max abs difference from pROC over {len(want)} datasets: {worst:.2e}")
