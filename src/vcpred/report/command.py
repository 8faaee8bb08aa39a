"""`vcpred report EVAL --out report.html [--model MODEL_DIR ...]`: the study-style HTML report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vcpred import RESEARCH_NOTICE, console
from vcpred.report.inputs import ReportError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="the study-style HTML report of an evaluation",
        description="One self-contained HTML file from a `vcpred evaluate` folder: cohort and flow, preprocessing, "
                    "Tables 2 and 3, ROC / calibration / decision curves, heat-map gallery, failure analysis, "
                    "model card and a TRIPOD+AI checklist (docs/report.md).")
    parser.add_argument("eval", metavar="EVAL", help="output folder of `vcpred evaluate`")
    parser.add_argument("--out", required=True, help="HTML file to write (e.g. report.html)")
    parser.add_argument("--model", metavar="MODEL_DIR", action="append",
                        help="model directory of `vcpred export` (heat-map gallery and model card); the first "
                             "one's configuration is the chosen one (failure analysis, model card); repeat it to "
                             "add more models of this evaluation to the heat-map gallery, one block each")
    parser.add_argument("--runs", help="the RUNS folder evaluated (default: the one EVAL records)")
    parser.add_argument("--manifest", help="cohort manifest (default: the one the runs trained on)")
    parser.add_argument("--gallery", type=int, default=2, metavar="N",
                        help="heat maps per outcome (true/false positives/negatives; default %(default)s; each is "
                             "one prediction with the exported model)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    parser.set_defaults(func=run_report)


def check_out(out: Path, force: bool) -> None:
    if out.is_dir():
        raise ReportError(f"--out {out} is a folder; give a file name such as {out / 'report.html'}")
    if out.exists() and not force:
        raise ReportError(f"--out {out} exists; choose another file or pass --force to overwrite it")
    if out.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"--out {out} should end in .html (the report is one HTML file)")


def run_report(args: argparse.Namespace) -> int:
    from vcpred.report.build import build_report

    out = Path(args.out)
    check_out(out, args.force)  # fail before the work, not after
    if args.gallery < 0:
        raise ReportError(f"--gallery must be 0 or more, got {args.gallery}")
    start = time.perf_counter()
    build_report(args.eval, out, model_dir=args.model, runs=args.runs, manifest=args.manifest,
                 gallery_per_cell=args.gallery)
    console.say(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.0f} s); "
                f"{RESEARCH_NOTICE}")
    return 0
