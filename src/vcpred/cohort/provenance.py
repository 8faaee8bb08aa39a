"""Where a cohort came from: a manifest written by `vcpred synth` is synthetic data.

A model trained on synthetic data learns the generator's phantom, not real patients, so every
artefact made from such a cohort (run, bundle, model card, prediction, viewer) must say so.
`vcpred synth` writes synth.json (generator "vcpred synth") and truth.csv beside manifest.csv;
either of them marks the cohort as synthetic.
"""

from __future__ import annotations

import json
from pathlib import Path

SYNTHETIC_WARNING = "trained on synthetic data (vcpred synth) - not for real patients"


def training_data(manifest: str | Path) -> dict:
    """{'synthetic': bool, 'evidence': str}: what the folder of this manifest says about its origin."""
    folder = Path(manifest).parent
    try:
        provenance = json.loads((folder / "synth.json").read_text())
        if isinstance(provenance, dict) and provenance.get("generator") == "vcpred synth":
            return {"synthetic": True, "evidence": f"synth.json (vcpred synth, seed {provenance.get('seed')})"}
    except (OSError, ValueError):
        pass
    if (folder / "truth.csv").is_file():
        return {"synthetic": True, "evidence": "truth.csv (true risks of a synthetic cohort)"}
    return {"synthetic": False, "evidence": "no synth.json or truth.csv beside the manifest"}


def is_synthetic(record: dict | None) -> bool:
    """True when a run's or bundle's recorded training_data says synthetic."""
    return bool(isinstance(record, dict) and record.get("synthetic"))
