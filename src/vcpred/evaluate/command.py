"""`vcpred evaluate RUNS --out EVAL`: metrics, comparisons and tables from predictions tables only."""

from __future__ import annotations

import argparse
from pathlib import Path

from vcpred import console
from vcpred.evaluate.aggregate import AGGREGATES
from vcpred.evaluate.core import DEFAULT_THRESHOLDS, evaluate_runs
from vcpred.evaluate.decision import parse_thresholds
from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.outputs import write_outputs
from vcpred.evaluate.selection import MARGIN, RULES
from vcpred.evaluate.summary import console_summary
from vcpred.output_folder import check, replacing


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score run predictions: AUC, thresholds, DeLong, calibration, tables",
        description="Evaluate a RUNS folder of <configuration>/split-<KK>/ run dirs from their "
                    "predictions tables only (docs/evaluation.md).")
    parser.add_argument("runs", help="folder holding <configuration>/split-<KK>/ run dirs")
    parser.add_argument("--out", required=True, help="output folder (EVAL)")
    parser.add_argument("--aggregate", choices=AGGREGATES, default="mean",
                        help="how augmented prediction combines a patient's frames (default %(default)s)")
    parser.add_argument("--best", metavar="NAME",
                        help="force the best variant (the reference for comparisons): 'CONFIG' (no AP) or "
                             "'CONFIG+AP'; default: the one the --select rule chooses")
    parser.add_argument("--select", choices=RULES, default=MARGIN,
                        help="how the best variant is chosen: 'margin' keeps the reference unless a challenger's "
                             "worst-site out-of-split AUC (mean internal AUC without 2 usable sites) is higher by "
                             "more than one standard error; 'mean-auc' takes the highest mean internal AUC "
                             "(the earlier rule). Default %(default)s")
    parser.add_argument("--reference", metavar="NAME",
                        help="the pre-specified variant the margin rule keeps unless beaten: 'CONFIG' or "
                             "'CONFIG+AP'; default: the configuration without images, else the first")
    parser.add_argument("--manifest", help="cohort manifest, for metrics per sex, age band and site")
    parser.add_argument("--thresholds", default=None, metavar="START:STOP:STEP",
                        help="decision-curve threshold probabilities (default 0.05:0.95:0.01)")
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise alpha (default %(default)s)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    parser.add_argument("--force", action="store_true",
                        help="accepted for scripts: an earlier `vcpred evaluate` output in --out is replaced anyway, "
                             "and a folder evaluate did not write is never written into")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    thresholds = parse_thresholds(args.thresholds) if args.thresholds else DEFAULT_THRESHOLDS
    if not 0 < args.alpha < 1:
        raise EvaluationError(f"--alpha must be in (0, 1), got {args.alpha}")
    out = Path(args.out)
    check(out, kind="evaluation", force=args.force)  # fail before the work, not after
    if args.reference and args.select != MARGIN:
        raise EvaluationError(f"--reference is the margin rule's; --select {args.select} has no reference")
    ev = evaluate_runs(args.runs, rule=args.aggregate, best=args.best, manifest=args.manifest,
                       thresholds=thresholds, alpha=args.alpha, selection_rule=args.select, reference=args.reference)
    with replacing(out, kind="evaluation", force=args.force) as folder:  # EVAL changes only when complete
        written = write_outputs(ev, folder, figures=not args.no_figures)
    # a configuration whose AP changes nothing (one frame) has one variant, not two: count what was run
    n_runs = len(ev.per_split[["configuration", "split"]].drop_duplicates())
    n_configurations = len({variant.configuration for variant in ev.variants})
    console.say(f"evaluated {n_runs} run(s) of {n_configurations} configuration(s); best: {ev.best.label}")
    for line in console_summary(ev):
        console.say(line)
    for warning in ev.small_sample.get("warnings", []):
        console.warn(warning)
    if ev.skipped:
        console.say(f"skipped {len(ev.skipped)} unfinished run(s): " +
                    "; ".join(f"{p} ({r})" for p, r in ev.skipped))
    console.say(f"wrote {len(written)} file(s) to {out}")
    return 0
