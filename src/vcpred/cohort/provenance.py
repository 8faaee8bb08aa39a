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


# What older runs and bundles read as: they were made before vcpred recorded the data's origin.
NOT_RECORDED = {"synthetic": False, "evidence": "not recorded (made before vcpred recorded the training data's origin)"}


def combined(records: list) -> dict:
    """One record for something made from several runs (a bundle, a report): synthetic when any
    run's data is (the conservative reading when runs disagree); NOT_RECORDED when none says."""
    known = [r for r in records if isinstance(r, dict) and "synthetic" in r]
    if not known:
        return dict(NOT_RECORDED)
    synthetic = [r for r in known if r.get("synthetic")]
    evidence = "; ".join(dict.fromkeys(str(r.get("evidence")) for r in (synthetic or known)))
    if synthetic and len(synthetic) < len(known):
        evidence += f" ({len(synthetic)} of {len(known)} runs synthetic: read as synthetic)"
    return {"synthetic": bool(synthetic), "evidence": evidence}


def recorded(meta: dict | None) -> dict:
    """A bundle's (or run's) training_data, or NOT_RECORDED for those made before it was recorded."""
    record = (meta or {}).get("training_data")
    return dict(record) if isinstance(record, dict) and "synthetic" in record else dict(NOT_RECORDED)


def warning_sentence() -> str:
    """SYNTHETIC_WARNING as a sentence, for banners: 'Trained on synthetic data ... patients.'"""
    return SYNTHETIC_WARNING[0].upper() + SYNTHETIC_WARNING[1:] + "."
