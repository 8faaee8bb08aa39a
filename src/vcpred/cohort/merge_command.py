"""`vcpred cohort merge-clinical MANIFEST TABLE --mapping MAPPING [--out NEW]` (vcpred.cohort.clinical_table
does the work). It writes a new manifest beside the old one and never replaces the user's manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from vcpred import console
from vcpred.errors import ConfigError, ManifestError

DEFAULT_SUFFIX = ".clinical.csv"  # manifest.csv -> manifest.clinical.csv


def add_merge(commands: argparse._SubParsersAction) -> None:
    merge = commands.add_parser(
        "merge-clinical", help="merge a hospital's clinical table into the manifest by a mapping file",
        description="Fill the manifest's clinical columns, label and set from a clinical table (CSV), as a mapping "
                    "file says: renames, age and days from dates, BMI from weight and height, yes/no flags, codes, "
                    "the label by a rule, the set by the values listed as external; patients matched by a "
                    "normalised key (docs/manifest.md, \"Merging a clinical table\"). Writes a new manifest beside "
                    "MANIFEST; MANIFEST itself is never replaced.")
    merge.add_argument("manifest", metavar="MANIFEST")
    merge.add_argument("table", metavar="TABLE", help="the clinical table, a CSV file (comma, semicolon or tab)")
    merge.add_argument("--mapping", required=True, metavar="MAPPING.yaml", help="which column comes from where")
    merge.add_argument("--out", metavar="NEW_MANIFEST",
                       help=f"the new manifest, in MANIFEST's folder (default: MANIFEST's name with {DEFAULT_SUFFIX})")
    merge.add_argument("--force", action="store_true", help="replace an earlier NEW_MANIFEST (never MANIFEST)")
    merge.set_defaults(func=run_merge)


def check_out(out: Path, manifest: Path, table: Path, *, force: bool) -> None:
    """A new file in the manifest's folder (its image paths are relative to that folder), never the manifest
    or the table; an existing one only with force."""
    from vcpred.cohort.from_dicom import check_out as check_manifest_out

    for given, what in ((manifest, "the manifest"), (table, "the clinical table")):
        if given.exists() and out.exists() and out.resolve() == given.resolve():
            raise ConfigError(f"--out {out} is {what} itself; merge-clinical writes a new file and never replaces "
                              f"yours: give a new file's name (default {default_out(manifest)}), check it with "
                              "`vcpred cohort check`, then move it over your manifest if you wish")
    if out.parent.resolve() != manifest.parent.resolve():
        raise ConfigError(f"--out {out} is not in the manifest's folder {manifest.parent}: its image paths are "
                          f"relative to that folder; write the new manifest beside it, e.g. {default_out(manifest)}")
    check_manifest_out(out, force=force)


def default_out(manifest: Path) -> Path:
    return manifest.with_name(manifest.stem + DEFAULT_SUFFIX)


def run_merge(args: argparse.Namespace) -> int:
    from vcpred.cohort.clinical_mapping import load_mapping
    from vcpred.cohort.clinical_table import manifest_text, merge_clinical, read_clinical_table, summary_lines
    from vcpred.hashing import atomic_write

    manifest, table_path = Path(args.manifest), Path(args.table)
    out = Path(args.out) if args.out else default_out(manifest)
    check_out(out, manifest, table_path, force=args.force)  # before any reading
    mapping = load_mapping(args.mapping)
    merge = merge_clinical(manifest, read_clinical_table(table_path), mapping)
    # What matched and what did not is the answer: printed even under --quiet.
    _print_unmatched(merge)
    if merge.problems:
        print(f"{len(merge.problems)} problem(s):")
        for problem in merge.problems:
            print(f"  {problem}")
        raise ManifestError(f"{len(merge.problems)} problem(s) merging {table_path} into {manifest} (listed above); "
                            f"nothing written to {out}: correct the table or the mapping ({args.mapping}) and run "
                            "again")
    if not merge.matched:
        raise ManifestError(_nothing_matched(merge))
    atomic_write(out, lambda tmp: tmp.write_text(manifest_text(merge.frame), encoding="utf-8"))
    print(f"wrote {out}: clinical values for {len(merge.matched)} of {len(merge.frame)} manifest row(s): "
          + ", ".join(f"{pid} (table row {table_row})" for _, pid, table_row in merge.matched))
    for line in summary_lines(merge):
        console.say(f"  {line}")
    _print_check(out)
    return 0


def _print_unmatched(merge) -> None:
    key = merge.mapping.key
    if merge.unmatched_manifest:
        print(f"{len(merge.unmatched_manifest)} manifest row(s) without a table row: "
              + ", ".join(f"row {row} {pid!r} (key {found})" for row, pid, found in merge.unmatched_manifest))
    if merge.unmatched_table:
        print(f"{len(merge.unmatched_table)} table row(s) matching no manifest row: "
              + ", ".join(f"table row {row} ({key.table} {cell!r}, key {found})"
                          for row, cell, found in merge.unmatched_table))


def _nothing_matched(merge) -> str:
    key = merge.mapping.key
    manifest_keys = [found for _, _, found in merge.unmatched_manifest[:2]]
    table_keys = [found for _, _, found in merge.unmatched_table[:2]]
    return (f"no table row matches a manifest row: the manifest's keys ({key.manifest}, normalise: {key.normalise}) "
            f"look like {', '.join(manifest_keys) or 'nothing'}, the table's ({key.table}) like "
            f"{', '.join(table_keys) or 'nothing'}; choose key.normalise (exact, casefold, digits) or key.manifest "
            "so that one patient's keys are equal (docs/manifest.md, \"Merging a clinical table\"); nothing written")


def _print_check(out: Path) -> None:
    """`cohort check` of the new manifest: what is still to do (ROIs to place, labels to find)."""
    from vcpred.cohort.command import roi_next_step
    from vcpred.cohort.validate import check_manifest

    result = check_manifest(out)
    if not result.problems:
        print(f"cohort check of {out}: no problems")
        return
    print(f"cohort check of {out}: {len(result.problems)} problem(s) still to fix (`vcpred cohort check {out}`):")
    for problem in result.problems:
        print(f"  {problem}")
    placing = roi_next_step(str(out), result)  # the ROIs are usually still to place: name the command
    if placing:
        print(placing)
