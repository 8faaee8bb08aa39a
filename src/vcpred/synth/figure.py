"""Example slices of the synthetic cohort: `python -m vcpred.synth.figure OUT.png [--seed N]`.

Two rows (T1, T2) by four patients (development/external site, without/with a fluid cleft),
each on its ROI slice (or, for a cleft seen only off-centre, the nearest slice showing it) with the
manifest's ROI box drawn.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vcpred.synth.patient import PatientSpec, SimulatedPatient, draw_outcome, simulate


def pick_patients(seed: int, limit: int = 200) -> list[tuple[str, SimulatedPatient]]:
    """The first development/external patients without and with a visible cleft."""
    wanted = [("development", 0), ("development", 1), ("external", 0), ("external", 1)]
    chosen = []
    for set_name, cleft in wanted:
        for index in range(limit):
            spec = PatientSpec(seed, set_name, index, f"{set_name[:3]}{index + 1:04d}")
            _, lesion, _ = draw_outcome(spec)
            # Clear examples: visible collapse, and edema when there is no cleft.
            if lesion.cleft != cleft or lesion.compression < 0.25 or (not cleft and lesion.edema < 0.5):
                continue
            patient = simulate(spec, ("t1", "t2"))
            if not cleft or patient.cleft_slices:
                chosen.append((f"{set_name} site {patient.site.name}, {'cleft' if cleft else 'no cleft'}",
                               patient))
                break
    return chosen


def shown_slice(p: SimulatedPatient) -> int:
    """The ROI slice, or the slice nearest to it on which the cleft shows."""
    if not p.cleft_slices or p.roi[0] in p.cleft_slices:
        return p.roi[0]
    return min(p.cleft_slices, key=lambda k: abs(k - p.roi[0]))


def window(p: SimulatedPatient, mm: float = 230.0) -> tuple[int, int, int]:
    """(top row, left column, size) of a square window of about `mm` around the ROI."""
    n = p.geometry.n_rows
    size = min(int(mm / p.geometry.pixel_mm), n)
    _, r0, c0, r1, c1 = p.roi
    top = int(np.clip((r0 + r1) // 2 - size // 2, 0, n - size))
    left = int(np.clip((c0 + c1) // 2 - int(0.4 * size), 0, n - size))
    return top, left, size


def draw(out: Path, seed: int = 0) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    patients = pick_patients(seed)
    fig, axes = plt.subplots(2, len(patients), figsize=(4.2 * len(patients), 8.6), squeeze=False)
    for col, (title, p) in enumerate(patients):
        k = shown_slice(p)
        _, r0, c0, r1, c1 = p.roi
        for row, sequence in enumerate(("t1", "t2")):
            ax = axes[row, col]
            image = p.volumes[sequence][k].astype(float)
            top, left, size = window(p)
            crop = image[top:top + size, left:left + size]
            ax.imshow(crop, cmap="gray", vmin=0, vmax=np.percentile(crop, 99.5))
            ax.add_patch(plt.Rectangle((c0 - left - 0.5, r0 - top - 0.5), c1 - c0, r1 - r0, fill=False,
                                       edgecolor="#ff4040", linewidth=1.2))
            where = "ROI slice" if k == p.roi[0] else f"ROI slice {p.roi[0]}"
            ax.set_title(f"{sequence.upper()}  {title}\n{p.lesion.level} {p.lesion.morphology}, "
                         f"slice {k} ({where}), {p.site.manufacturer.split()[0]}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("vcpred synth: sagittal thoracolumbar MRI, acute OVCF in the red box "
                 "(synthetic, no real patient)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(draw(args.out, args.seed))
