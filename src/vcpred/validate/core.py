"""`validate_model`: score an exported model on a labelled cohort and write OUT (docs/validate.md).

OUT/
  predictions.csv   one row per scored patient: patient_id, set, label, probability (the model's, as
                    `vcpred predict` gives it), sd / low / high (spread over split models), threshold,
                    category, borderline, risk (vcpred.predict.risk), imputed, p_split_KK (each split
                    model's probability)
  excluded.csv      patient_id, set, reason: patients not scored (excluded in the manifest; the model's
                    own patients: those it was trained, tuned or recalibrated on; unreadable images,
                    unusable clinical values, no label), in manifest order
  metrics.json      auc, auc_ci_low, auc_ci_high (DeLong), threshold (the model's), sensitivity,
                    specificity, n, events, controls, calibration_intercept, calibration_slope (with
                    calibration_slope_ci_low/high, Wald), brier; not_computed {metric: reason};
                    small_sample (vcpred.evaluate.small_sample's rule on the scored patients);
                    split_models; calibration_curve; decision_curve;
                    risk (patients per risk); imputed (patients and columns imputed); excluded; overlap
                    (the model's own patients, vcpred.validate.overlap); model and cohort provenance;
                    recalibration (with --recalibrate)
  figures/roc.png, figures/calibration.png, figures/decision_curve.png
  validation.html   the page, figures embedded
Written beside OUT and swapped in complete (vcpred.output_folder); with --recalibrate, the new model
directory likewise. Both temporary folders are made before the first patient is scored, so a folder
that cannot be written is refused at once.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vcpred import RESEARCH_NOTICE, __version__, console
from vcpred.errors import RunError, VcpredError
from vcpred.bundle.known_patients import IMAGE_DIGEST
from vcpred.evaluate.calibration import calibration_json
from vcpred.evaluate.decision import decision_json
from vcpred.evaluate.small_sample import MIN_PER_CLASS, sample_size
from vcpred.hashing import sha256_file
from vcpred.jsonio import jsonable
from vcpred.runs import read_record
from vcpred.validate import measures
from vcpred.validate.overlap import Overlap, own_patients
from vcpred.validate.same_images import same_images
from vcpred.validate.scoring import MANIFEST, UNLABELLED, Scored, left_out_counts, read_records, score_cohort

GENERATOR = "vcpred validate"
FORMAT_VERSION = 1
FIT_MINIMUM = 2  # cases and controls the calibration model can be fitted on at all (bundle.recalibration.fit)
HEADLINE = ("auc", "auc_ci_low", "auc_ci_high", "threshold", "sensitivity", "specificity", "n", "events", "controls",
            "calibration_intercept", "calibration_slope", "calibration_slope_ci_low", "calibration_slope_ci_high",
            "brier")
COHORT_CONSEQUENCE = ("the AUC, sensitivity, specificity and calibration below are imprecise (read their confidence "
                      "intervals); the calibration curve and slope say little")
RECALIBRATION_CONSEQUENCE = ("the recalibration was fitted anyway (--force-small): its intercept and slope are "
                             "imprecise, and the updated probabilities may be no better than the original ones")


@dataclass
class Validation:
    out: Path
    record: dict  # metrics.json
    scored: Scored
    recalibrated: Path | None = None


def _model_record(bundle) -> dict:
    meta = bundle.meta
    record = {"path": str(bundle.path), "model_id": meta.model_id, "configuration": meta.configuration,
              "kind": meta.kind, "ap": meta.ap, "aggregate": meta.aggregate,
              "threshold": bundle.threshold, "threshold_rule": meta.threshold_rule,
              "split_models": len(bundle.models), "training_data": bundle.training_data}
    if meta.recalibration:
        r = meta.recalibration
        record["recalibration"] = {"intercept": r["intercept"], "slope": r["slope"], "cohort": r["cohort"],
                                   "recalibrated_from": r.get("recalibrated_from"),
                                   "fitted_at": r.get("fitted_at", "validate")}
    return record


def _cohort_record(scored: Scored, bundle) -> dict:
    from vcpred.cohort.provenance import training_data

    manifest = scored.manifest
    return {"manifest": str(manifest), "manifest_sha256": sha256_file(manifest), "set": scored.set_name,
            "patients": scored.total, "excluded_in_manifest": scored.left_out[MANIFEST],
            "training_data": training_data(manifest),
            "is_training_manifest": _is_training_manifest(bundle, manifest)}


def _is_training_manifest(bundle, manifest: Path) -> bool | None:
    """Whether this manifest is the one the split models were trained on (by sha256, from the source
    runs' config.yaml when they are still readable here; None when none is)."""
    digest = sha256_file(manifest)
    known = None
    for entry in bundle.meta.splits:
        try:
            recorded = read_record(Path(entry.run)).manifest_sha256 if entry.run else None
        except RunError:  # the source run is gone or unreadable here
            continue
        if recorded:
            if recorded == digest:
                return True
            known = False
    return known


def _warn_development(scored: Scored, cohort: dict, bundle) -> int:
    """Development patients of the training manifest would be scored on the data the model learned from:
    said for a model that does not record its training patients (those it records are left out)."""
    development = int((scored.table["set"] == "development").sum()) if len(scored.table) else 0
    if development and cohort["is_training_manifest"] and bundle.meta.training_patients is None:
        console.warn(f"{development} scored patient(s) are development patients of the manifest the model was "
                     "trained on: its training and validation patients, so these numbers are optimistic; pass "
                     "--set external to score the external patients only")
    return development


def _console_summary(record: dict) -> None:
    reasons = record["not_computed"]

    def value(key: str, digits: int = 3) -> str:
        v = record.get(key)
        return f"{v:.{digits}f}" if isinstance(v, float) and math.isfinite(v) else "n/a"

    auc = (f"AUC {value('auc')} (95 % CI {value('auc_ci_low')}-{value('auc_ci_high')}, DeLong)" if "auc" not in reasons
           else f"AUC n/a ({reasons['auc']})")
    console.say(f"{record['model']['model_id']} on {record['n']} patient(s) ({record['events']} events): {auc}; at "
                f"the model's threshold {record['threshold']:.4f}: sensitivity {value('sensitivity')}, specificity "
                f"{value('specificity')}; calibration intercept {value('calibration_intercept', 2)}, slope "
                f"{value('calibration_slope', 2)}; Brier {value('brier')}")
    imputed = record["imputed"]
    if imputed["patients"]:
        console.say(f"{imputed['patients']} of {imputed['of']} scored patient(s) had missing clinical values imputed "
                    f"(--allow-missing): {imputation_counts(imputed)}")
    if record["excluded"]:
        console.say(f"{len(record['excluded'])} patient(s) excluded:")
        for item in record["excluded"]:
            console.say(f"  {item['patient_id']}: {item['reason']}")


def imputation_counts(imputed: dict) -> str:
    """'age 2, sex 1': patients imputed per column (metrics.json `imputed`)."""
    return ", ".join(f"{column} {count}" for column, count in imputed["columns"].items())


def _check_recalibration_cases(records: list, overlap: Overlap, manifest, out: Path, force_small: bool) -> None:
    """--recalibrate needs MIN_PER_CLASS cases and controls among the patients to score (FIT_MINIMUM with
    --force-small): refused before scoring any."""
    labels = [r.label for r in records if r.label is not None and r.patient_id not in overlap.matches]
    own = f" after leaving out the model's own {len(overlap.matches)}" if overlap.matches else ""
    refusal = _too_few_to_recalibrate(sum(labels), len(labels) - sum(labels), force_small,
                                      f"the patients to score{own}")
    if refusal:
        from vcpred.validate.recalibration import RecalibrationError

        raise RecalibrationError(f"cannot recalibrate on {manifest}: {refusal}; nothing was scored and {out} was left "
                                 "as it was")


def _too_few_to_recalibrate(cases: int, controls: int, force_small: bool, who: str) -> str | None:
    """Why these counts cannot be recalibrated on (None: they can): below FIT_MINIMUM never, below
    MIN_PER_CLASS only with --force-small."""
    counts = f"{who} are {cases} case(s) and {controls} control(s)"
    if min(cases, controls) < FIT_MINIMUM:
        return (f"the calibration model needs at least {FIT_MINIMUM} labelled cases and {FIT_MINIMUM} controls, and "
                f"{counts}")
    if min(cases, controls) < MIN_PER_CLASS and not force_small:
        return (f"{counts}, fewer than the {MIN_PER_CLASS} of each a recalibration needs (docs/validate.md, "
                "Recalibration): its intercept and slope would be too imprecise to trust; add patients, or pass "
                "--force-small to fit it anyway (the new model and the page then say so)")
    return None


def _recalibrate(bundle, scored: Scored, cohort: dict, digests: dict[str, list[str]], folder: Path,
                 target: Path, force_small: bool) -> dict:
    from vcpred.validate import recalibration

    n, events = len(scored.table), int(scored.labels.sum())
    # checked before scoring too; patients that could not be predicted may have left fewer
    refusal = _too_few_to_recalibrate(events, n - events, force_small, "the patients scored")
    if refusal:
        raise recalibration.RecalibrationError(f"cannot recalibrate on {cohort['manifest']}: {refusal}; "
                                               f"{target} was not written")
    size = sample_size(scored.labels, "the recalibration cohort").record(RECALIBRATION_CONSEQUENCE)
    intercept, slope = recalibration.fit(scored.labels, scored.probabilities)
    if bundle.meta.recalibration:
        console.say(recalibration.composing_line(bundle.meta.recalibration))
    if size["small"]:
        console.warn(size["warning"])
    patients = sorted(scored.table["patient_id"].astype(str))
    provenance = {"manifest": cohort["manifest"], "manifest_sha256": cohort["manifest_sha256"],
                  "set": cohort["set"], "n": n, "events": events, "patients": patients,
                  "images": {pid: digests[pid] for pid in patients if digests.get(pid)},
                  "image_digest": IMAGE_DIGEST, "synthetic": bool(cohort["training_data"]["synthetic"])}
    out, meta = recalibration.write_recalibrated(bundle, folder, target, intercept=intercept, slope=slope,
                                                 cohort=provenance, small_sample=size if size["small"] else None)
    updated = recalibration.apply(scored.probabilities, intercept, slope)
    apparent, _ = measures.headline(scored.labels, updated, meta.threshold)
    return {"model": str(out), "model_id": meta.model_id, "method": recalibration.METHOD,
            "intercept": intercept, "slope": slope,
            "total": {"intercept": meta.recalibration["intercept"], "slope": meta.recalibration["slope"]},
            "threshold_before": bundle.threshold, "threshold_after": meta.threshold,
            "apparent": {k: apparent[k] for k in ("calibration_intercept", "calibration_slope", "brier", "auc")},
            "small_sample": size, "probabilities": updated}


def validate_model(model: str | Path, manifest: str | Path, out: str | Path, *, set_name: str | None = None,
                   precision: str = "fp32", allow_missing: bool = False, recalibrate: str | Path | None = None,
                   height_loss: float | None = None, force: bool = False, force_small: bool = False) -> Validation:
    """Score MODEL_DIR on MANIFEST (its `set_name` patients, or all), write OUT and, with recalibrate, a
    recalibrated copy of the model there; returns what was written and metrics.json's record. The
    model's own patients (vcpred.validate.overlap) are left out; every check a user can fail (OUT and
    NEW_MODEL_DIR writable, enough cases to recalibrate: MIN_PER_CLASS of each, FIT_MINIMUM with
    force_small) is made before the first patient is scored."""
    from vcpred.cohort.provenance import SYNTHETIC_WARNING
    from vcpred.output_folder import check, replacing
    from vcpred.predict.bundle import load_bundle
    from vcpred.validate.recalibration import check_target

    out = Path(out)
    if force_small and recalibrate is None:
        raise VcpredError("--force-small lets --recalibrate fit on fewer than the minimum of patients; pass "
                          "--recalibrate NEW_MODEL_DIR with it, or leave it out")
    check(out, kind="validation", force=force)  # fail before the work, not after
    if recalibrate is not None:
        if Path(recalibrate).resolve() == out.resolve():
            raise VcpredError("--recalibrate and --out must be different folders")
        check_target(Path(recalibrate), Path(model))
        check(recalibrate, kind="model", force=force)
    bundle = load_bundle(model, precision=precision)
    if bundle.synthetic:
        console.warn(f"model {bundle.meta.model_id}: {SYNTHETIC_WARNING}")
    chosen = read_records(manifest, set_name=set_name, height_loss=height_loss)
    with ExitStack() as outputs:
        # each written beside its folder from now on: one that cannot be written fails here, before scoring
        folder = outputs.enter_context(replacing(out, kind="validation", force=force))
        model_folder = (outputs.enter_context(replacing(recalibrate, kind="model", force=force))
                        if recalibrate is not None else None)
        overlap = own_patients(bundle, chosen.records, recalibrating=recalibrate is not None)
        repeated = same_images(chosen.records, skip=set(overlap.matches))
        if recalibrate is not None:
            _check_recalibration_cases([r for r in chosen.records if r.patient_id not in repeated.reasons], overlap,
                                       manifest, out, force_small)
        scored = score_cohort(bundle, manifest, chosen, set_name=set_name, allow_missing=allow_missing,
                              left_out=overlap.reasons(), same_images=repeated.reasons)
        if scored.table.empty:
            raise VcpredError(_nothing_scored(scored, overlap, manifest, out))
        record = _record(bundle, scored, overlap)
        record["same_images"] = repeated.record
        recalibrated = None
        ensembles = {measures.as_ensemble(bundle, scored.table).variant: measures.as_ensemble(bundle, scored.table)}
        if recalibrate is not None:
            update = _recalibrate(bundle, scored, record["cohort"], overlap.digests, model_folder, Path(recalibrate),
                                  force_small)
            recalibrated = Path(update["model"])
            ensembles[measures.Variant(f"recalibrated ({update['model_id']})", bundle.meta.ap)] = \
                measures.as_ensemble(bundle, scored.table, update.pop("probabilities"),
                                     label=f"recalibrated ({update['model_id']})")
            record["recalibration"] = update
        record = _write(folder, scored, record, ensembles)
    _console_summary(record)
    return Validation(out, record, scored, recalibrated)


def _nothing_scored(scored: Scored, overlap: Overlap, manifest, out: Path) -> str:
    labelled = scored.total - scored.left_out[MANIFEST] - scored.left_out[UNLABELLED]
    if overlap.matches and len(overlap.matches) == labelled:
        return (f"every labelled patient of {manifest} ({labelled}) is one the model was trained, tuned or "
                f"recalibrated on (listed above); validate it on patients it has not seen; {out} was left as it was")
    return (f"none of the {scored.total} patient(s) of {manifest} could be scored ({left_out_counts(scored.left_out)}; "
            f"reasons above); {out} was left as it was")


def _record(bundle, scored: Scored, overlap: Overlap) -> dict:
    """metrics.json without its curves and recalibration."""
    metrics, reasons = measures.headline(scored.labels, scored.probabilities, bundle.threshold)
    cohort = _cohort_record(scored, bundle)
    return {"generator": GENERATOR, "version": FORMAT_VERSION, "vcpred_version": __version__,
            "notice": RESEARCH_NOTICE, "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            **{k: metrics.get(k) for k in HEADLINE}, "ci_method": "DeLong", "ci_level": 0.95,
            "not_computed": reasons, "model": _model_record(bundle), "cohort": cohort,
            "small_sample": sample_size(scored.labels, "the validation cohort").record(COHORT_CONSEQUENCE),
            "overlap": overlap.record, "development_patients_scored": _warn_development(scored, cohort, bundle),
            "split_models": measures.split_model_aucs(scored), "risk": scored.risks(), "imputed": scored.imputed(),
            "excluded": scored.excluded}


def _write(folder: Path, scored: Scored, record: dict, ensembles: dict) -> dict:
    """OUT's files, in the folder `replacing` gave; returns metrics.json's record as written."""
    from vcpred.validate import page

    calibration, decision = measures.curves(ensembles)
    record["calibration_curve"] = calibration_json(calibration)
    record["decision_curve"] = decision_json(decision)
    scored.table.to_csv(folder / "predictions.csv", index=False)  # full precision: metrics can be recomputed
    pd.DataFrame(scored.excluded, columns=["patient_id", "set", "reason"]).to_csv(folder / "excluded.csv",
                                                                                    index=False)
    pngs = page.figures(scored, record, calibration, decision)
    (folder / "figures").mkdir()
    for name, png in pngs.items():
        if png is not None:
            (folder / "figures" / page.FIGURES[name]).write_bytes(png)
    record = jsonable(record)
    (folder / "metrics.json").write_text(json.dumps(record, indent=1) + "\n")
    (folder / "validation.html").write_text(page.page_html(record, pngs), encoding="utf-8")
    return record
