"""`vcpred cohort init DICOM_ROOT --out manifest.csv`: a manifest to fill in, from a folder of studies.

One row per patient entry of DICOM_ROOT (a sub-folder, or a zip, named after the patient), or per
study with per_study. The sagittal series of each entry are listed from their headers; the one the
pattern chooses (words in any order, "t2 sag", or a shell-style glob; vcpred.cohort.series_choice) is
chosen, or the only sagittal one when no pattern is given. Where that leaves none or several, the
series cell stays empty and the candidates are returned for the user to choose (each with the short
reference, e.g. 20240105#3, to copy into series_<seq>).
Every row is in one set (development unless told external). Labels, clinical values and ROIs stay
empty: the researcher fills them in.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path


from vcpred.cohort.manifest import EXCLUDE_COLUMN, IMAGE_PREFIX, ROI_COLUMNS, SERIES_PREFIX
from vcpred.cohort.series_choice import SeriesInfo, listing, resolve, sort_key
from vcpred.errors import ConfigError, ImageReadError
from vcpred.hashing import atomic_write

# The clinical columns of the study (Kim et al. 2024), left empty for the researcher.
CLINICAL_COLUMNS = ("age", "sex", "bmi", "bmd_tscore", "steroid", "diabetes", "days_to_mri")


@dataclass
class Entry:
    """One manifest row to be: the patient, the image path, the chosen series or the candidates."""

    patient_id: str
    image: Path
    series: list[SeriesInfo]  # every series of the entry (of its study, per study)
    # every series of the whole folder or zip: when more than one, the row names its series, by a
    # reference that is unique among them
    in_source: list[SeriesInfo] = field(default_factory=list)
    chosen: SeriesInfo | None = None
    candidates: list[SeriesInfo] = field(default_factory=list)
    why: str = ""  # why the choice is the user's: "2 series match --series 't2 sag'"
    problem: str | None = None

    def candidate_lines(self) -> list[str]:
        """The candidates, each with the reference that chooses it (series_choice.listing)."""
        return listing(self.candidates, self.in_source)


def list_series(path: Path) -> list[SeriesInfo]:
    """Every image series of a patient entry, from its headers (no pixels read)."""
    from vcpred.imaging.io import scan_series

    return sorted((SeriesInfo.of(uid, items) for uid, items in scan_series(path).groups.items()), key=sort_key)


def patient_entries(root: Path) -> list[Path]:
    """The sub-folders and zips of root (hidden ones passed over), sorted by name."""
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder; give the folder holding one sub-folder (or zip) per patient")
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")
               and (p.is_dir() or p.name.lower().endswith(".zip"))]
    if not entries:
        raise ConfigError(f"{root} holds no sub-folder or zip; give the folder holding one sub-folder (or zip) "
                          "per patient")
    return entries


def choose(entry: Entry, pattern: str | None) -> None:
    """Set entry.chosen, or entry.candidates when the choice is the user's (see module docstring)."""
    sagittal = [s for s in entry.series if s.plane == "sagittal"]
    matching = resolve(pattern, sagittal) if pattern else sagittal
    if len(matching) == 1:
        entry.chosen = matching[0]
    elif len(matching) > 1:  # the ones matched: telling them apart is the choice
        entry.candidates = matching
        entry.why = f"{len(matching)} series match --series {pattern!r}" if pattern else f"{len(matching)} sagittal series"
    else:
        entry.candidates = sagittal or entry.series
        entry.why = f"no series matches --series {pattern!r}" if sagittal else "no sagittal series"


def scan_root(root: Path, *, pattern: str | None = None, per_study: bool = False) -> list[Entry]:
    """One Entry per patient entry (per_study: per study in it) with its series chosen or listed."""
    entries = []
    for path in patient_entries(root):
        name = path.name[:-4] if path.name.lower().endswith(".zip") else path.name
        try:
            series = list_series(path)
        except ImageReadError as exc:
            entries.append(Entry(name, path, [], problem=str(exc)))
            continue
        studies = sorted({s.study_uid for s in series}, key=lambda u: next(s.study_date for s in series
                                                                           if s.study_uid == u))
        groups = [[s for s in series if s.study_uid == u] for u in studies] if per_study else [series]
        for number, group in enumerate(groups, start=1):
            pid = name if len(groups) == 1 else f"{name}_{group[0].study_date or number}"
            entry = Entry(pid, path, group, in_source=series)
            choose(entry, pattern)
            entries.append(entry)
    return entries


def manifest_text(entries: list[Entry], out: Path, sequence: str, set_name: str = "development") -> str:
    """The manifest CSV: image paths relative to its folder; every row in set_name; the series cell filled
    where the entry holds several series and one was chosen."""
    columns = ["patient_id", "set", "label", IMAGE_PREFIX + sequence, SERIES_PREFIX + sequence, *ROI_COLUMNS,
               "level", "site", *CLINICAL_COLUMNS, EXCLUDE_COLUMN]  # empty: vcpred annotate can write a reason
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for entry in entries:
        if entry.problem:
            continue
        series = entry.chosen.uid if entry.chosen and len(entry.in_source) > 1 else ""
        image = os.path.relpath(entry.image.resolve(), out.parent.resolve())
        writer.writerow([entry.patient_id, set_name, "", Path(image).as_posix(), series]
                        + [""] * (len(columns) - 5))
    return buffer.getvalue()


def check_out(out: Path, *, force: bool) -> None:
    """An existing manifest is replaced only with force; a folder never."""
    if out.is_dir():
        raise ConfigError(f"{out} is a folder; give the manifest's file name, e.g. {out / 'manifest.csv'}")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to replace it (your edits in it would be lost)")


def write_manifest(entries: list[Entry], out: Path, sequence: str, *, force: bool,
                   set_name: str = "development") -> Path:
    """Write the manifest atomically (check_out first), every row in set_name."""
    check_out(out, force=force)
    text = manifest_text(entries, out, sequence, set_name)
    atomic_write(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return out
