"""`vcpred prepare MANIFEST --out STORE`: the imaging pipeline over a whole cohort."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from vcpred import console
from vcpred.errors import ConfigError

if TYPE_CHECKING:
    from vcpred.imaging.pipeline import PrepareParams

# The imaging stack (SimpleITK, pydicom, nibabel) is imported when `prepare` runs, keeping
# `vcpred --help` fast.


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare", help="N4, ROI crop, adjacent frames: write the prepared store models train on",
        description="Read every patient's sagittal series, correct the bias field (N4), crop the "
                    "fractured vertebra on the main and adjacent slices, normalise and resize; one .npz "
                    "per patient in STORE, and a QC sheet STORE/qc.html. Unchanged patients are skipped on "
                    "re-runs (docs/imaging.md).")
    parser.add_argument("manifest")
    parser.add_argument("--out", required=True, metavar="STORE", help="prepared store folder (new or existing store)")
    parser.add_argument("--frames", type=int, default=2, metavar="K",
                        help="adjacent slices each side, 0-10 (default 2 -> 5 frames)")
    parser.add_argument("--edge", choices=("replicate", "keep"), default="replicate",
                        help="frames beyond the volume: replicate the edge slice or keep fewer (default replicate)")
    parser.add_argument("--size", type=int, default=224, help="output size in pixels (default 224)")
    parser.add_argument("--margin", type=float, default=0.15, help="ROI enlargement fraction (default 0.15)")
    parser.add_argument("--normalize", choices=("zscore", "minmax", "quantile"), default="zscore",  # preprocess.NORMALIZE_METHODS (not imported: SimpleITK)
                        help="per-crop intensity normalisation (default zscore; quantile: each pixel's rank "
                             "in its crop mapped to a standard normal, which removes monotone contrast "
                             "differences between scanners)")
    parser.add_argument("--crop-spacing-mm", type=float, default=None, metavar="MM",
                        help="resample each crop to MM pixels before normalising and resizing, so sites with "
                             "other in-plane resolutions hold the same detail (e.g. the coarsest site's spacing; "
                             "default: the image's own pixels)")
    parser.add_argument("--no-n4", action="store_true", help="skip N4 bias-field correction")
    parser.add_argument("--n4-shrink", type=int, default=4, help="N4 shrink factor (default 4)")
    parser.add_argument("--n4-iterations", default="30,20",
                        help="N4 maximum iterations per fitting level (default 30,20)")
    parser.add_argument("--sequences", help="comma-separated sequences used as channels, first is the "
                                            "reference grid (default: the manifest's first image column)")
    parser.add_argument("--channels", choices=("auto", "repeat", "stack"), default="auto",
                        help="repeat one sequence 3 times, or stack sequences (auto: by count)")
    parser.add_argument("--series", action="append", default=[], metavar="SEQUENCE=CHOICE",
                        help="choose the series in DICOM folders or zips holding several (repeatable): its UID, "
                             "its DATE#N reference as cohort init lists it, its description, or words in any "
                             "order (t2='t2 sag'); a patient's series_<sequence> manifest column wins")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="frame dtype in the store")
    parser.add_argument("--jobs", type=int, default=1, help="patients prepared in parallel (default 1)")
    parser.add_argument("--force", action="store_true", help="prepare every patient again, even unchanged ones")
    parser.set_defaults(func=run_prepare)


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a comma-separated list of whole numbers, e.g. 50,40,30") from None


def parse_series(values: list[str]) -> tuple[tuple[str, str], ...]:
    """--series SEQUENCE=CHOICE values (prepare, predict) as pairs."""
    pairs = []
    for value in values:
        name, sep, selector = value.partition("=")
        if not sep or not name or not selector:
            raise ConfigError(f"--series {value!r} must look like SEQUENCE=CHOICE, e.g. t2=T2_SAG or t2='t2 sag'")
        pairs.append((name.strip(), selector.strip()))
    return tuple(pairs)


def params_from_args(args: argparse.Namespace) -> PrepareParams:
    """PrepareParams from the command line (validated)."""
    from vcpred.imaging.pipeline import PrepareParams
    from vcpred.imaging.preprocess import MAX_FRAMES_K

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    if not 0 <= args.frames <= MAX_FRAMES_K:
        raise ConfigError(f"--frames {args.frames}: adjacent slices each side must be between 0 and {MAX_FRAMES_K} "
                          f"(2K+1 = {2 * MAX_FRAMES_K + 1} frames at most; the study uses 2)")
    sequences = tuple(s.strip() for s in args.sequences.split(",") if s.strip()) if args.sequences else None
    return PrepareParams(
        k=args.frames, edge=args.edge, margin=args.margin, n4=not args.no_n4, n4_shrink=args.n4_shrink,
        n4_iterations=_int_list(args.n4_iterations, "--n4-iterations"), normalize=args.normalize,
        size=args.size, sequences=sequences, channels=args.channels, series=parse_series(args.series),
        dtype=args.dtype, crop_spacing_mm=args.crop_spacing_mm)


def run_prepare(args: argparse.Namespace) -> int:
    from vcpred.cohort.validate import load_manifest
    from vcpred.imaging.batch import identical_lines, prepare_cohort

    params = params_from_args(args)
    cohort = load_manifest(args.manifest)
    if cohort.excluded:  # never read: their image may be the very reason they are left out
        console.say(f"{len(cohort.excluded)} patient(s) excluded in the manifest, not prepared: "
                    + "; ".join(f"{e.patient_id} ({e.reason})" for e in cohort.excluded))
    summary = prepare_cohort(cohort, args.out, params, jobs=args.jobs, force=args.force)
    console.say(f"{args.out}: prepared {len(summary.prepared)}, skipped {len(summary.skipped)} unchanged, "
                f"failed {len(summary.failed)} ({summary.seconds:.1f} s)")
    if summary.qc_sheet is not None:
        console.say(f"QC sheet: {summary.qc_sheet} (every patient's crops and warnings; look before training)")
    # Failures and identical frames are the answer to the user's request: printed even under --quiet.
    if summary.failed:
        print(f"{len(summary.failed)} patient(s) failed:", file=sys.stderr)
        for pid, reason in summary.failed.items():
            print(f"  {pid}: {reason}", file=sys.stderr)
        print(f"Fix each and run this command again (unchanged patients are skipped); a patient whose images cannot "
              f"be fixed (e.g. a series that misses a slice) is left out of every step by a reason in its `exclude` "
              f"cell of {args.manifest} (docs/manifest.md)", file=sys.stderr)
    for line in identical_lines(summary.identical, args.manifest):
        print(line, file=sys.stderr)
    return 2 if summary.failed or summary.identical else 0
