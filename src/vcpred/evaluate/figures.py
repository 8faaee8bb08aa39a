"""PNG figures of the split ensembles: ROC curves, calibration plot, decision curve (matplotlib Agg)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
from sklearn.metrics import roc_curve  # noqa: E402

from vcpred import RESEARCH_NOTICE  # noqa: E402

if TYPE_CHECKING:
    from vcpred.evaluate.calibration import VariantCalibration
    from vcpred.evaluate.decision import DecisionCurves


def _save(fig, path: Path | io.BytesIO, dpi: int = 120) -> Path | io.BytesIO:
    """Stamp the research-use notice, save (to a path or a buffer) and close the figure."""
    fig.text(0.01, 0.01, RESEARCH_NOTICE, fontsize=6, color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


def number(value, digits: int = 3) -> str:
    """A number for a figure's text; 'n/a' for a missing or non-finite one (never 'nan')."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def png_bytes(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (with the notice), for embedding in an HTML report."""
    return _save(fig, io.BytesIO(), dpi).getvalue()


def roc_figure(ev, path: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(5, 5))
    drawn = False
    for variant, ens in ev.ensembles.items():
        known = ens.labelled
        if known["label"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(known["label"].astype(int), known["probability"])
        ax.plot(fpr, tpr, label=f"{variant.label} (AUC {number(ens.metrics.get('auc'))})")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="External set, split ensembles")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def draw_calibration(ax, calibration: Mapping[str, VariantCalibration]) -> None:
    """Binned observed fraction (with its Wilson 95 % interval) vs mean predicted probability per
    variant label, in the curve's quantile bins (evaluation.json 'calibration', read back with
    evaluate.calibration.read_calibration)."""
    for label, cal in calibration.items():
        lows, highs = cal.bin_intervals()
        fraction = cal.curve.observed_fraction
        ci = (f", 95 % CI {number(cal.slope_ci_low, 2)} to {number(cal.slope_ci_high, 2)}"
              if math.isfinite(cal.slope_ci_low) else "")
        ax.errorbar(cal.curve.mean_predicted, fraction,
                    yerr=[[f - low for f, low in zip(fraction, lows)], [high - f for f, high in zip(fraction, highs)]],
                    marker="o", capsize=3,
                    label=f"{label} (slope {number(cal.slope, 2)}{ci}; {len(fraction)} bins of ~{cal.n // len(fraction)})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="mean predicted probability", ylabel="observed fraction", xlim=(0, 1), ylim=(0, 1),
           title="Calibration, external set")
    ax.legend(fontsize=7, loc="upper left")


def draw_decision(ax, dc: DecisionCurves, labels: list[str] | None = None) -> None:
    """Net benefit of each variant's ensemble (those of `labels`, default all), treat all and treat
    none (evaluation.json 'decision_curves', read back with evaluate.decision.read_decision)."""
    curves = {k: v for k, v in dc.net_benefit.items() if labels is None or k in labels}
    for label, values in curves.items():
        ax.plot(dc.thresholds, values, label=label)
    ax.plot(dc.thresholds, dc.treat_all, color="black", linestyle="--", label="treat all")
    ax.plot(dc.thresholds, dc.treat_none, color="grey", linestyle=":", label="treat none")
    top = max(max(v) for v in curves.values()) if curves else 0.0
    ax.set(xlabel="threshold probability", ylabel="net benefit", ylim=(-0.05, max(top, 0.05) * 1.1),
           title="Decision curve, external set")
    ax.legend(fontsize=7)


def draw_roc_band(ax, split_curves: list[tuple], ensemble_curve: tuple | None, title: str,
                  grid_points: int = 101) -> None:
    """Split models as a band (min to max sensitivity over splits at each 1 - specificity) with their
    mean as a thin line, and the split ensemble as a thick line. Curves: (fpr, tpr) arrays."""
    import numpy as np

    grid = np.linspace(0, 1, grid_points)
    if split_curves:
        # curves have different steps: interpolate each onto one grid so a band and a mean exist
        tprs = np.array([np.interp(grid, fpr, tpr) for fpr, tpr in split_curves])
        ax.fill_between(grid, tprs.min(axis=0), tprs.max(axis=0), color="tab:blue", alpha=0.2,
                        label=f"{len(split_curves)} split models (min-max)")
        ax.plot(grid, tprs.mean(axis=0), color="tab:blue", linewidth=0.8, linestyle="--", label="split mean")
    if ensemble_curve is not None:
        ax.plot(*ensemble_curve, color="tab:red", linewidth=2, label="ensemble")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, loc="lower right")


def calibration_figure(ev, path: Path) -> Path | None:
    if not ev.calibration:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_calibration(ax, ev.calibration)
    return _save(fig, path)


def decision_figure(ev, path: Path) -> Path | None:
    if ev.decision_curves is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    draw_decision(ax, ev.decision_curves)
    return _save(fig, path)


def write_figures(ev, folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    made = [roc_figure(ev, folder / "roc_ensembles.png"), calibration_figure(ev, folder / "calibration.png"),
            decision_figure(ev, folder / "decision_curve.png")]
    return [p for p in made if p is not None]
