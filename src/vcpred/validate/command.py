"""`vcpred validate --model MODEL_DIR --manifest COHORT --out DIR [--set external] [--recalibrate NEW_MODEL_DIR]`."""

from __future__ import annotations

import argparse

from vcpred import console


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="score an exported model on a labelled cohort: AUC (DeLong CI), calibration, decision curve",
        description="External validation of a model directory written by `vcpred export`: every labelled patient of "
                    "a manifest is predicted exactly as `vcpred predict` does, then scored (AUC with its DeLong 95 % "
                    "CI, sensitivity and specificity at the model's own threshold, calibration intercept and slope, "
                    "Brier score, ROC, calibration and decision curves, an HTML page). Patients excluded in the "
                    "manifest, and those whose images or clinical values cannot be used, are listed with the reason "
                    "and left out. Optionally the model is updated by logistic recalibration on "
                    "this cohort and written as a new model directory; the original is never changed. Research use "
                    "only, not a medical device. See docs/validate.md.")
    parser.add_argument("--model", required=True, help="model directory written by `vcpred export`")
    parser.add_argument("--manifest", required=True, help="labelled cohort manifest (docs/manifest.md)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--set", dest="set_name", choices=("development", "external"),
                        help="score only the manifest's patients of this set (default: every patient)")
    parser.add_argument("--recalibrate", metavar="NEW_MODEL_DIR",
                        help="also update the model by logistic recalibration (intercept and slope) on this cohort "
                             "and write it, with its provenance, as a new model directory")
    parser.add_argument("--force-small", action="store_true",
                        help="recalibrate even when the patients hold fewer cases or controls than the documented "
                             "minimum (vcpred.evaluate.small_sample: 10 of each, docs/validate.md); the new model, its "
                             "card and the page then say so. At least 2 of each are needed whatever this says")
    parser.add_argument("--allow-missing", action="store_true",
                        help="impute missing clinical values with the training medians (and say so) instead of "
                             "excluding the patient")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"),
                        help="CPU inference precision (default fp32: validation numbers the same on every CPU; auto: "
                             "bf16 where the CPU has it natively and the model's bf16 check passed)")
    parser.add_argument("--height-loss", type=float, default=None,
                        help="height-loss fraction that makes label 1 when labels are derived from "
                             "height_initial/height_followup (default: the manifest rule's 0.15)")
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier recalibrated model directory in NEW_MODEL_DIR; an earlier "
                             "`vcpred validate` output in --out is replaced anyway, and a folder vcpred did not "
                             "write is never written into")
    parser.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    from vcpred.validate.core import validate_model

    result = validate_model(args.model, args.manifest, args.out, set_name=args.set_name, precision=args.precision,
                            allow_missing=args.allow_missing, recalibrate=args.recalibrate,
                            height_loss=args.height_loss, force=args.force, force_small=args.force_small)
    if result.recalibrated is not None:
        r = result.record["recalibration"]
        console.say(f"recalibrated (intercept {r['intercept']:.3f}, slope {r['slope']:.3f}; threshold "
                    f"{r['threshold_before']:.4f} -> {r['threshold_after']:.4f}): wrote {result.recalibrated}")
    console.say(f"wrote {result.out} (validation.html, metrics.json, predictions.csv)")
    return 0
