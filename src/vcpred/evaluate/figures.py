"""PNG figures of the split ensembles: ROC curves, calibration plot, decision curve (matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
from sklearn.metrics import roc_curve  # noqa: E402

from vcpred import RESEARCH_NOTICE  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.text(0.01, 0.01, RESEARCH_NOTICE, fontsize=6, color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def roc_figure(ev, path: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(5, 5))
    drawn = False
    for variant, ens in ev.ensembles.items():
        known = ens.labelled
        if known["label"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(known["label"].astype(int), known["probability"])
        auc = ens.metrics.get("auc")
        ax.plot(fpr, tpr, label=f"{variant.label} (AUC {auc:.3f})")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="External set, split ensembles")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def calibration_figure(ev, path: Path) -> Path | None:
    if not ev.calibration:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, cal in ev.calibration.items():
        curve = cal["curve"]
        ax.plot(curve["mean_predicted"], curve["observed_fraction"], marker="o",
                label=f"{label} (slope {cal['slope']:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="mean predicted probability", ylabel="observed fraction", xlim=(0, 1), ylim=(0, 1),
           title="Calibration, external set")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def decision_figure(ev, path: Path) -> Path | None:
    dc = ev.decision_curves
    if not dc:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in dc["net_benefit"].items():
        ax.plot(dc["thresholds"], values, label=label)
    ax.plot(dc["thresholds"], dc["treat_all"], color="black", linestyle="--", label="treat all")
    ax.plot(dc["thresholds"], dc["treat_none"], color="grey", linestyle=":", label="treat none")
    top = max(max(v) for v in dc["net_benefit"].values())
    ax.set(xlabel="threshold probability", ylabel="net benefit", ylim=(-0.05, max(top, 0.05) * 1.1),
           title="Decision curve, external set")
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_figures(ev, folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    made = [roc_figure(ev, folder / "roc_ensembles.png"), calibration_figure(ev, folder / "calibration.png"),
            decision_figure(ev, folder / "decision_curve.png")]
    return [p for p in made if p is not None]
