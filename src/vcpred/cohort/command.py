"""`vcpred cohort check` and `vcpred cohort split` (`cohort init`: init_command, `cohort merge-clinical`:
merge_command, `vcpred cohort shift`: vcpred.evaluate.shift_command)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from vcpred import console
from vcpred.cohort.init_command import add_init
from vcpred.cohort.manifest import DEFAULT_HEIGHT_LOSS, read_manifest_table
from vcpred.cohort.merge_command import add_merge
from vcpred.cohort.splits import (
    LEAVE_ONE_SITE_OUT,
    RANDOM,
    STRATEGIES,
    check_validation_size,
    held_out_sites,
    make_site_splits,
    make_splits,
    repeat_warning,
    save_splits,
)
from vcpred.cohort.summary import excluded_lines, summarize, written_rows, written_summary
from vcpred.cohort.validate import ManifestCheck, check_manifest, exclusions, load_manifest
from vcpred.errors import ConfigError, ManifestError

if TYPE_CHECKING:
    import pandas as pd


RANDOM_OPTIONS = (("--n-splits", int, 10), ("--val-fraction", float, 0.2), ("--seed", int, 0))


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add `vcpred cohort`; returns its actions, to which vcpred.cli adds those of higher layers (shift)."""
    cohort = subparsers.add_parser("cohort", help="check a cohort manifest; make patient-level splits")
    commands = cohort.add_subparsers(dest="cohort_command", metavar="ACTION", required=True)

    add_init(commands)
    check = commands.add_parser("check", help="summarise a manifest and list every problem in it")
    check.add_argument("manifest")
    _height_option(check)
    check.set_defaults(func=run_check)
    add_merge(commands)

    split = commands.add_parser("split", help="patient-level splits of the development set: stratified random, "
                                "or one per development site (leave-one-site-out)")
    split.add_argument("manifest")
    split.add_argument("--out", required=True, help="splits JSON file to write")
    split.add_argument("--strategy", choices=STRATEGIES, default=RANDOM,
                       help="random: label-stratified random splits (default); leave-one-site-out: one split per "
                            "development site, whose patients validate while the other sites train")
    for option, kind, default in RANDOM_OPTIONS:
        split.add_argument(option, type=kind, default=None, help=f"random splits only (default {default})")
    split.add_argument("--force", action="store_true", help="overwrite an existing splits file")
    _height_option(split)
    split.set_defaults(func=run_split)
    return commands


def _height_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--height-loss", type=float, default=DEFAULT_HEIGHT_LOSS,
                        help="height-loss fraction that makes label 1 when labels are derived from "
                             "height_initial/height_followup (default %(default)s)")


def run_check(args: argparse.Namespace) -> int:
    from vcpred.cohort.clinical_table import clinical_table_hint

    hint = clinical_table_hint(args.manifest)  # a clinical table given as the manifest: one line, not 7 problems
    if hint:
        raise ManifestError(hint)
    result = check_manifest(args.manifest, height_loss_threshold=args.height_loss)
    if result.cohort is not None:
        console.say(summarize(result.cohort, result.table))
        console.say("no problems found")
        return 0
    # Problems go to stdout even under --quiet: they are the answer the user asked for.
    print(f"{len(result.problems)} problem(s):")
    for problem in result.problems:
        print(f"  {problem}")
    included = _included_table(args.manifest, result)
    rows = written_rows(included)
    placing = _roi_next_step(args.manifest, sum(not row.roi_placed for row in rows))
    if placing:
        print(placing)
    # the cohort's shape below its problems, to be seen while fixing them
    console.say(written_summary(args.manifest, included, rows, len(result.excluded)))
    for line in excluded_lines(result.excluded):
        print(line)
    return 2


def _included_table(manifest: str, result: ManifestCheck) -> pd.DataFrame:
    """The rows cohort check reads as patients: neither excluded nor of a wrong cell count (whose cells
    may sit in the wrong columns)."""
    ragged = read_manifest_table(manifest).ragged
    skip = set(exclusions(result.table, ragged)) | ragged
    return result.table.drop(index=[row for row in result.table.index if row in skip])


def roi_next_step(manifest: str, result: ManifestCheck) -> str | None:
    """The `vcpred annotate` line `cohort check` prints below the problems when ROIs are still to place
    (merge-clinical prints it below its check of the manifest it wrote)."""
    rows = written_rows(_included_table(manifest, result))
    return _roi_next_step(manifest, sum(not row.roi_placed for row in rows))


def _roi_next_step(manifest: str, without_roi: int) -> str | None:
    if not without_roi:
        return None
    return (f"next: place the {without_roi} missing ROI box(es) with `vcpred annotate {manifest}` (docs/annotate.md), "
            f"then run `vcpred cohort check {manifest}` again")


def run_split(args: argparse.Namespace) -> int:
    cohort = load_manifest(args.manifest, height_loss_threshold=args.height_loss)
    if args.strategy == LEAVE_ONE_SITE_OUT:
        return _site_split(args, cohort)
    for option, _, default in RANDOM_OPTIONS:
        name = option[2:].replace("-", "_")
        if getattr(args, name) is None:
            setattr(args, name, default)
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


def _site_split(args: argparse.Namespace, cohort) -> int:
    given = [option for option, _, _ in RANDOM_OPTIONS if getattr(args, option[2:].replace("-", "_")) is not None]
    if given:
        raise ConfigError(f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --strategy "
                          f"{LEAVE_ONE_SITE_OUT} (one split per development site, nothing drawn at random)")
    splits = make_site_splits(cohort)
    path = save_splits(args.out, splits, cohort=cohort, strategy=LEAVE_ONE_SITE_OUT, overwrite=args.force)
    sites = ", ".join(f"{site} {len(split.val_ids)}" for site, split in zip(held_out_sites(splits, cohort), splits))
    console.say(f"wrote {len(splits)} leave-one-site-out splits (validation patients per held-out site: {sites}) "
                f"to {path}")
    return 0
