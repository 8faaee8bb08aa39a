"""`vcpred cohort shift MANIFEST --store STORE --out DIR`: the site-shift check (docs/site_shift.md).

It reads the prepared store, a layer above vcpred.cohort, so the action lives here and vcpred.cli adds
it to `vcpred cohort` (vcpred.cli.ACTIONS). Only argparse is imported until the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vcpred import console

# the defaults only: vcpred.evaluate.site_shift (numpy, pandas) is imported when the command runs
DEFAULT_FOLDS, DEFAULT_PERMUTATIONS = 5, 20


def register(actions: argparse._SubParsersAction) -> None:
    """Add `shift` to the actions of `vcpred cohort`."""
    shift = actions.add_parser(
        "shift", help="how each site's prepared images differ, and how easily a classifier tells them apart",
        description="Per site and set: pixel spacing, crop size and intensity summaries from the prepared store, "
                    "and the cross-validated AUC with which simple statistics of the prepared images tell each "
                    "site (and the external set) from the rest, with a plain-words reading (docs/site_shift.md).")
    shift.add_argument("manifest")
    shift.add_argument("--store", required=True, help="the prepared store of `vcpred prepare MANIFEST --out STORE`")
    shift.add_argument("--out", required=True, help="output folder (site_shift.json, site_shift.md, CSV tables)")
    shift.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help="cross-validation folds (default %(default)s; fewer "
                                                            "when a group has fewer patients)")
    shift.add_argument("--seed", type=int, default=0, help="seed of the folds and of the label shuffles "
                                                           "(default %(default)s)")
    shift.add_argument("--permutations", type=int, default=DEFAULT_PERMUTATIONS,
                       help="label shuffles that give each AUC's chance band (default %(default)s; 0: none)")
    shift.add_argument("--force", action="store_true",
                       help="accepted for scripts: an earlier `vcpred cohort shift` output in --out is replaced "
                            "anyway, and a folder it did not write is never written into")
    shift.set_defaults(func=run_shift)


def run_shift(args: argparse.Namespace) -> int:
    from vcpred.cohort.validate import load_manifest
    from vcpred.evaluate.site_shift import Classifier, check_site_shift
    from vcpred.evaluate.site_shift_outputs import write_site_shift
    from vcpred.output_folder import check, replacing

    out = Path(args.out)
    check(out, kind="site-shift", force=args.force)  # fail before the work, not after
    cohort = load_manifest(args.manifest, check_files=False)  # the store holds the images
    shift = check_site_shift(cohort, args.store, Classifier(args.folds, args.seed, args.permutations))
    with replacing(out, kind="site-shift", force=args.force) as folder:
        written = write_site_shift(shift, folder)
    for found in shift.separations:
        console.say(found.verdict)
    console.say(f"wrote {len(written)} file(s) to {out}")
    return 0
