"""`vcpred cohort init DICOM_ROOT --out manifest.csv` (vcpred.cohort.from_dicom does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vcpred import console
from vcpred.cohort.manifest import SETS
from vcpred.errors import ConfigError


def add_init(commands: argparse._SubParsersAction) -> None:
    init = commands.add_parser(
        "init", help="start a manifest from a folder holding one DICOM folder (or zip) per patient",
        description="One row per patient folder or zip of DICOM_ROOT (or per study with --per-study), its "
                    "sagittal series chosen by --series or listed for you to choose; label, clinical and ROI "
                    "columns are left empty for you to fill (docs/manifest.md).")
    init.add_argument("root", metavar="DICOM_ROOT")
    init.add_argument("--out", required=True, help="manifest CSV file to write")
    init.add_argument("--series", metavar="PATTERN",
                      help="the sagittal series to choose by its SeriesDescription, case-insensitive: words in "
                           "any order, e.g. 't2 sag' (matches 'SAG T2 FSE'), or a shell-style glob, e.g. '*t2*sag*' "
                           "(docs/manifest.md, 'Choosing a series'; default: the only sagittal series)")
    init.add_argument("--sequence", default="t2", help="sequence name of the image column (default t2: image_t2)")
    init.add_argument("--set", dest="set_name", choices=SETS, default="development",
                      help="the set of every row written (default development); external when this export is "
                           "another hospital's, to validate on as a manifest of its own (docs/manifest.md)")
    init.add_argument("--per-study", action="store_true", help="one row per study instead of per patient folder")
    init.add_argument("--force", action="store_true", help="replace an existing manifest file")
    init.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    from vcpred.cohort.from_dicom import check_out, scan_root, write_manifest

    if not args.sequence.isidentifier():
        raise ConfigError(f"--sequence {args.sequence!r} must be a name like t2 or stir (letters, digits, _)")
    out = Path(args.out)
    check_out(out, force=args.force)  # before reading every header
    entries = scan_root(Path(args.root), pattern=args.series, per_study=args.per_study)
    rows = [e for e in entries if not e.problem]
    if not rows:
        raise ConfigError(f"no patient folder of {args.root} holds a DICOM series: "
                          + "; ".join(f"{e.patient_id}: {e.problem}" for e in entries[:3]))
    write_manifest(entries, out, args.sequence, force=args.force, set_name=args.set_name)
    # What the user has to do next is the answer: printed even under --quiet.
    to_choose = [e for e in rows if e.chosen is None]
    for entry in to_choose:
        print(f"{entry.patient_id}: {entry.why}; write the first word of the one to read into series_{args.sequence}, "
              'or choose it in vcpred annotate (docs/manifest.md, "Choosing a series"):')
        for line in entry.candidate_lines():
            print(f"    {line}")
    for entry in entries:
        if entry.problem:
            print(f"{entry.patient_id}: left out: {entry.problem}")
    skipped = len(entries) - len(rows)
    in_set = f", all in set {args.set_name}" if args.set_name != "development" else ""
    console.say(f"wrote {out}: {len(rows)} patient(s){in_set}, series chosen for {len(rows) - len(to_choose)}, "
                f"{len(to_choose)} to choose" + (f", {skipped} left out" if skipped else "")
                + "; next: the label and clinical columns from the hospital's table with "
                  f"`vcpred cohort merge-clinical {out} TABLE.csv --mapping MAPPING.yaml`, the ROIs with "
                  "`vcpred annotate` on the manifest it writes, then `vcpred cohort check` (docs/hospital.md)")
    return 0
