"""`vcpred train CONFIG --split K --out RUN_DIR`."""

from __future__ import annotations

import argparse

from vcpred import console
from vcpred.training.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train one configuration on one split; write a run dir")
    train.add_argument("config", help="training config (YAML)")
    train.add_argument("--split", type=int, required=True, help="split index in the splits file")
    train.add_argument("--out", required=True, help="run dir to write")
    train.add_argument("--force", action="store_true", help="retrain a finished run dir")
    train.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from vcpred.training.run import train_run  # torch: only when training, not for --help

    out = train_run(load_config(args.config), args.split, args.out, force=args.force)
    console.say(f"wrote {out}")
    return 0
