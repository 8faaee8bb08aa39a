"""`vcpred export RUNS --configuration NAME --out MODEL_DIR`."""

from __future__ import annotations

import argparse

from vcpred import console


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a configuration's split models as one model directory",
                                   description="Merge each split model of one configuration (LoRA folded in) and "
                                               "write them with preprocessing, thresholds, hashes and a model "
                                               "card into MODEL_DIR (safetensors + JSON). See docs/predict.md.")
    parser.add_argument("runs", help="RUNS folder holding <configuration>/split-KK/ run dirs")
    parser.add_argument("--configuration", required=True, help="configuration name (a folder under RUNS)")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--eval", dest="eval_dir", help="EVAL folder of `vcpred evaluate`, for the model card")
    parser.add_argument("--ap", action=argparse.BooleanOptionalAction, default=True,
                        help="augmented prediction over frames (default: on)")
    parser.add_argument("--aggregate", default="mean", choices=("mean", "median", "logit_mean"),
                        help="how AP combines frame probabilities (default: mean)")
    parser.add_argument("--bf16-check-patients", type=int, default=8, metavar="N",
                        help="validation patients per split scored in bf16 to check that bf16 moves no probability "
                             "by 1e-3 or more, which `vcpred predict --precision auto` requires (default 8; 0: no "
                             "check, so auto predicts in fp32)")
    parser.add_argument("--recalibrate", action=argparse.BooleanOptionalAction, default=True,
                        help="fit a logistic recalibration of the probabilities on the development patients' "
                             "out-of-split predictions when they hold at least 10 cases and 10 controls, and record "
                             "its cross-fitted calibration; thresholds are mapped through it, so risk categories do "
                             "not change (default: on; --no-recalibrate: the split models' own probabilities)")
    parser.add_argument("--force", action="store_true", help="replace an earlier export in --out")
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from vcpred.bundle.export import export_configuration

    out = export_configuration(args.runs, args.configuration, args.out, eval_dir=args.eval_dir, ap=args.ap,
                               rule=args.aggregate, force=args.force,
                               bf16_check_patients=args.bf16_check_patients, recalibrate=args.recalibrate)
    console.say(f"wrote {out}")
    return 0
