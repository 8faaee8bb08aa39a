"""Logistic recalibration of an exported model on a labelled cohort ("model updating", Steyerberg
2019 ch. 20; Van Calster et al. 2016), written as a new model directory with its provenance.

The update: p' = expit(a + b * logit(p)), with p the model's ensemble probability (the mean over
split models) and (a, b) the intercept and slope of the logistic calibration model fitted on the
cohort (vcpred.stats.calibration: logit P(y = 1) = a + b * logit(p), the slope model). It is
monotone (b > 0 is required), so the ranking of patients, every AUC and the patients called high
risk are unchanged: the development threshold t becomes expit(a + b * logit(t)), and so does
each split model's threshold. What changes is the probability a patient is told.

In a recalibrated bundle (bundle.json key `recalibration`), `vcpred predict` (and everything that
predicts through it: `predict --manifest`, `serve`, `validate`) reports p' as the probability, the
split models' probabilities and their min-max through the same function, and the threshold from
bundle.json (already on the new scale); per-frame probabilities stay the split models' own.
Recalibrating an already recalibrated model (by `vcpred export`, on the development patients'
out-of-split probabilities, or by an earlier `validate --recalibrate`) composes: the new update is
fitted on the model's current, recalibrated probabilities and composed with the earlier one into one
(a, b) on the split models' own probabilities (`previous` keeps the earlier record); `vcpred
validate` says so on one line. Composing or refitting on the split models' own probabilities gives
the same function (a logistic update of a logistic update is one), so this only keeps the history.
The original model directory is never changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

from vcpred.errors import VcpredError
from vcpred.evaluate.small_sample import as_sentence
from vcpred.bundle.files import BundleMeta
# the update itself (fit, apply, compose, how prediction applies it) lives in the bundle layer, where
# `vcpred export` fits one too; re-exported here for validate's callers
from vcpred.bundle.recalibration import (  # noqa: F401
    METHOD, RecalibrationError, apply, composed, fit, linear_predictor, recalibrate_result,
)


def _where(record: dict) -> str:
    """Where an earlier recalibration was fitted, in words."""
    if record.get("fitted_at") == "export":
        return "at export on the development patients' out-of-split probabilities"
    cohort = record.get("cohort") or {}
    return f"on {cohort.get('manifest', 'a cohort')}"


def composing_line(previous: dict) -> str:
    """The one line `vcpred validate --recalibrate` prints on a model that is already recalibrated."""
    return (f"the model is already recalibrated ({_where(previous)}: intercept {float(previous['intercept']):.3f}, "
            f"slope {float(previous['slope']):.3f}); composing: this update is fitted on its recalibrated "
            "probabilities and applied after it, as one update on the split models' own probabilities")


def card_section(record: dict, original_id: str, threshold_before: float, threshold_after: float) -> str:
    """The Markdown section appended to the recalibrated model's MODEL_CARD.md."""
    cohort = record["cohort"]
    which = f"its {cohort['set']} patients" if cohort.get("set") else "all its patients"
    lines = [
        "", "## Recalibration (model updating)", "",
        f"This model is `{original_id}` updated by logistic recalibration on `{cohort['manifest']}` ({which}): "
        f"{cohort['n']} labelled patients with {cohort['events']} events, by `vcpred validate --recalibrate` on "
        f"{record['date']} (vcpred {record['vcpred_version']}).", "",
        f"- probability = expit({record['fit']['intercept']:.4f} + {record['fit']['slope']:.4f} × logit(p)), p = the "
        "previous model's ensemble probability"
        + (f"; composed with the earlier recalibration (fitted {_where(record['previous'])}): "
           f"expit({record['intercept']:.4f} + {record['slope']:.4f} × logit(p)) on the split models' own ensemble "
           "probability" if record.get("previous") else ""),
        f"- thresholds mapped through the same function: development threshold {threshold_before:.4f} → "
        f"{threshold_after:.4f}; the same patients are called high risk, and the ranking of patients (every AUC) is "
        "unchanged",
        "- the performance and calibration reported above are the original model's; on the recalibration cohort "
        "itself the updated model is calibrated by construction (apparent calibration), so its calibration must be "
        "judged on other patients",
        "- per-frame probabilities in predictions remain the split models' own (not recalibrated)",
    ]
    if (record.get("small_sample") or {}).get("warning"):
        lines.insert(3, f"**Warning: {as_sentence(record['small_sample']['warning'])}**\n")
    if cohort.get("synthetic"):
        lines.append("- the recalibration cohort is synthetic (vcpred synth): this update says nothing about real "
                     "patients")
    return "\n".join(lines) + "\n"


def check_target(out: Path, model: Path) -> None:
    """VcpredError unless `out` is a folder outside the model directory (and does not hold it)."""
    out, model = out.resolve(), model.resolve()
    if out == model or out in model.parents or model in out.parents:
        raise VcpredError(f"--recalibrate {out} must be a new folder outside the model directory {model} (the "
                          "original model is never changed)")


def write_recalibrated(bundle, folder: Path, out: str | Path, *, intercept: float, slope: float,
                       cohort: dict, small_sample: dict | None = None) -> tuple[Path, BundleMeta]:
    """A new model directory for `out`, written into `folder` (its temporary sibling, from
    vcpred.output_folder.replacing): the bundle's split models unchanged, bundle.json with the
    recalibration record and mapped thresholds, MODEL_CARD.md with a recalibration section; every hash
    recomputed. intercept, slope: the update fitted on the bundle's current probabilities; small_sample:
    the small-sample record of a cohort below the minimum, fitted with --force-small (kept in the record
    and said in the card). On a bundle
    that is already recalibrated, the record says in `composed` what was done (composing_line).
    Returns (out, its BundleMeta)."""
    from vcpred import __version__
    from vcpred.bundle.files import CARD_FILE, parse_meta, write_bundle_json
    from vcpred.hashing import sha256_files

    out = Path(out)
    check_target(out, bundle.path)
    previous = bundle.meta.recalibration
    total_a, total_b = composed(previous, intercept, slope)
    record = {"method": METHOD, "intercept": total_a, "slope": total_b,
              "fit": {"intercept": intercept, "slope": slope},
              "cohort": cohort, "recalibrated_from": bundle.meta.model_id,
              "source_meta_sha256": bundle.raw.get("meta_sha256"),
              "threshold_before": bundle.threshold,
              "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "vcpred_version": __version__,
              **({"small_sample": {**small_sample, "forced": True}} if small_sample else {}),
              **({"composed": composing_line(previous), "previous": previous} if previous else {})}

    def mapped(value):
        return None if value is None else apply(float(value), intercept, slope)

    listed = sorted(str(name) for name in bundle.meta.files if name != CARD_FILE)
    for name in listed:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle.path / name, folder / name)
    meta = {k: v for k, v in bundle.raw.items() if k not in ("files", "meta_sha256")}
    meta["splits"] = [{**entry, "threshold": mapped(entry.get("threshold"))} for entry in bundle.raw["splits"]]
    meta["threshold"] = mapped(bundle.threshold)
    meta["threshold_rule"] = (f"{bundle.meta.threshold_rule}; then recalibrated on {cohort['manifest']} "
                              "(the same function as the probabilities)")
    meta["recalibration"] = record
    files = sha256_files(folder, listed)
    digest = hashlib.sha256(json.dumps([files, record], sort_keys=True).encode()).hexdigest()[:10]
    base = bundle.meta.model_id.split("@")[0].removesuffix("+recal")
    meta["model_id"] = f"{base}+recal@{digest}"
    card = (bundle.path / CARD_FILE).read_text() if (bundle.path / CARD_FILE).is_file() else ""
    (folder / CARD_FILE).write_text(card.rstrip("\n") + "\n"
                                    + card_section(record, bundle.meta.model_id, bundle.threshold, meta["threshold"]))
    meta = write_bundle_json(folder, meta, files)
    return out, parse_meta(meta, out / "bundle.json")
