"""`vcpred synth`: write a synthetic OVCF cohort (images, manifest.csv, truth.csv)."""

from __future__ import annotations

import argparse

from vcpred import console
from vcpred.synth.generate import FORMATS, generate_cohort


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser(
        "synth", help="generate a synthetic OVCF cohort with a known true risk",
        description="Generate synthetic sagittal thoracolumbar MRI (DICOM or NIfTI), a cohort "
                    "manifest and the true risk of every patient (truth.csv, never for models).")
    synth.add_argument("--out", required=True, help="output folder (new or empty)")
    synth.add_argument("--development", type=int, default=200,
                       help="development patients (default %(default)s)")
    synth.add_argument("--external", type=int, default=45,
                       help="external-validation patients from an unseen site (default %(default)s)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    synth.add_argument("--format", choices=FORMATS, default="dicom",
                       help="image format (default %(default)s)")
    synth.add_argument("--sequences", default="t2,t1",
                       help="comma-separated sequences, t1 and/or t2 (default %(default)s)")
    synth.add_argument("--jobs", type=int, default=1, help="worker processes (default %(default)s)")
    synth.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)  # tests/demos only
    synth.add_argument("--force", action="store_true",
                       help="replace an earlier `vcpred synth` cohort in --out (a folder synth did not write "
                            "is never written into)")
    synth.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    sequences = tuple(s for s in args.sequences.split(",") if s.strip())
    result = generate_cohort(args.out, n_development=args.development, n_external=args.external,
                             seed=args.seed, fmt=args.format, sequences=sequences, jobs=args.jobs,
                             size=args.size, force=args.force)
    console.say(result.summary())
    console.say(f"took {result.seconds:.1f} s, {result.bytes_written / 1e6:.1f} MB of images")
    return 0
