"""`vcpred validate --model MODEL_DIR --manifest COHORT --out DIR [--recalibrate NEW_MODEL_DIR]`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="score an exported model on a labelled cohort: AUC (DeLong CI), calibration, decision curve",
        description="External validation of a model directory written by `vcpred export`: every patient of a "
                    "labelled manifest is predicted exactly as `vcpred predict` does, then scored (AUC with its "
                    "DeLong 95 % CI, sensitivity and specificity at the model's own threshold, calibration "
                    "intercept and slope, Brier score, ROC, calibration and decision curves, an HTML page). "
                    "Optionally the model is updated by logistic recalibration on this cohort and written as a new "
                    "model directory. Research use only, not a medical device. See docs/validate.md.")
    parser.add_argument("--model", required=True, help="model directory written by `vcpred export`")
    parser.add_argument("--manifest", required=True, help="labelled cohort manifest (docs/manifest.md)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    from vcpred.errors import ConfigError

    raise ConfigError("vcpred validate is not finished yet")
