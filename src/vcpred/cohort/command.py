"""`vcpred cohort check` and `vcpred cohort split`."""

from __future__ import annotations

import argparse

from vcpred import console
from vcpred.cohort.init_command import add_init
from vcpred.cohort.manifest import DEFAULT_HEIGHT_LOSS
from vcpred.cohort.splits import check_validation_size, make_splits, repeat_warning, save_splits
from vcpred.cohort.summary import summarize
from vcpred.cohort.validate import check_manifest, load_manifest


def register(subparsers: argparse._SubParsersAction) -> None:
    cohort = subparsers.add_parser("cohort", help="check a cohort manifest; make patient-level splits")
    commands = cohort.add_subparsers(dest="cohort_command", metavar="ACTION", required=True)

    add_init(commands)
    check = commands.add_parser("check", help="summarise a manifest and list every problem in it")
    check.add_argument("manifest")
    _height_option(check)
    check.set_defaults(func=run_check)

    split = commands.add_parser("split", help="stratified patient-level splits of the development set")
    split.add_argument("manifest")
    split.add_argument("--out", required=True, help="splits JSON file to write")
    split.add_argument("--n-splits", type=int, default=10)
    split.add_argument("--val-fraction", type=float, default=0.2)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--force", action="store_true", help="overwrite an existing splits file")
    _height_option(split)
    split.set_defaults(func=run_split)


def _height_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--height-loss", type=float, default=DEFAULT_HEIGHT_LOSS,
                        help="height-loss fraction that makes label 1 when labels are derived from "
                             "height_initial/height_followup (default %(default)s)")


def run_check(args: argparse.Namespace) -> int:
    result = check_manifest(args.manifest, height_loss_threshold=args.height_loss)
    if result.cohort is not None:
        console.say(summarize(result.cohort, result.table))
        console.say("no problems found")
        return 0
    console.say(f"{args.manifest}: {len(result.table)} rows")
    # Problems go to stdout even under --quiet: they are the answer the user asked for.
    print(f"{len(result.problems)} problem(s):")
    for problem in result.problems:
        print(f"  {problem}")
    return 2


def run_split(args: argparse.Namespace) -> int:
    cohort = load_manifest(args.manifest, height_loss_threshold=args.height_loss)
    splits = make_splits(cohort, n_splits=args.n_splits, val_fraction=args.val_fraction, seed=args.seed)
    # refused before anything is written: evaluate would find it only after every run is trained
    check_validation_size(cohort, args.val_fraction)
    warning = repeat_warning(splits, cohort, args.val_fraction, source=str(args.out))
    if warning:
        console.warn(warning)
    path = save_splits(args.out, splits, cohort=cohort, seed=args.seed,
                       val_fraction=args.val_fraction, overwrite=args.force)
    train, val = len(splits[0].train_ids), len(splits[0].val_ids)
    console.say(f"wrote {len(splits)} splits ({train} train / {val} validation patients each) to {path}")
    return 0
