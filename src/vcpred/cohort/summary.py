"""A human-readable summary of a cohort: counts, events and prevalence, missing values.

The counting helpers (event_counts, labels_by_group, missing_by_set) are shared with the HTML
report (vcpred.report), so the CLI summary and the report cannot disagree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from vcpred.cohort.clinical_policy import FLAG, LIMITS, UNITS, clinical_columns
from vcpred.cohort.manifest import (
    HEIGHT_COLUMNS,
    ROI_COLUMNS,
    Cohort,
    ExcludedPatient,
    image_sequences,
    is_missing,
    parse_float,
)

import pandas as pd


@dataclass(frozen=True)
class EventCounts:
    patients: int
    labelled: int
    events: int

    @property
    def unlabelled(self) -> int:
        return self.patients - self.labelled

    @property
    def prevalence(self) -> float | None:
        return self.events / self.labelled if self.labelled else None


def event_counts(labels: list[int | None]) -> EventCounts:
    known = [x for x in labels if x is not None]
    return EventCounts(len(labels), len(known), sum(known))


def labels_by_group(cohort: Cohort) -> tuple[dict[str, list], dict[tuple[str, str], list]]:
    """Labels per set and per (set, site) (site '-' when the manifest has none)."""
    return _group_labels(cohort.records)


def _group_labels(rows: list) -> tuple[dict[str, list], dict[tuple[str, str], list]]:
    """labels_by_group of any rows with set, site and label (PatientRecord, WrittenRow)."""
    by_set: dict[str, list] = defaultdict(list)
    by_site: dict[tuple[str, str], list] = defaultdict(list)
    for r in rows:
        by_set[r.set].append(r.label)
        by_site[(r.set, r.site or "-")].append(r.label)
    return dict(sorted(by_set.items())), dict(sorted(by_site.items()))


def missing_by_set(cohort: Cohort) -> dict[str, dict[str, int]]:
    """column -> set -> number of patients whose value is missing."""
    sets = sorted({r.set for r in cohort.records})
    return {column: {s: sum(r.clinical.get(column) is None for r in cohort.records if r.set == s) for s in sets}
            for column in cohort.clinical_columns}


def _events_line(name: str, labels: list[int | None], unlabelled: str) -> str:
    counts = event_counts(labels)
    prevalence = "n/a" if counts.prevalence is None else f"{counts.prevalence:.1%}"
    extra = f", {counts.unlabelled} {unlabelled}" if counts.unlabelled else ""
    return f"  {name:<24} {counts.patients:>5} patients  {counts.events:>4} events  prevalence {prevalence}{extra}"


def _group_lines(rows: list, unlabelled: str) -> list[str]:
    """Patients, events and prevalence per set, and per set and site when the manifest names sites."""
    by_set, by_site = _group_labels(rows)
    lines = ["per set:", *(_events_line(s, labels, unlabelled) for s, labels in by_set.items())]
    if any(r.site for r in rows):
        lines.append("per set and site:")
        lines += [_events_line(f"{s} / {site}", labels, unlabelled) for (s, site), labels in by_site.items()]
    return lines


def summarize(cohort: Cohort, table: pd.DataFrame) -> str:
    """Patients, events and prevalence per set and site, sequences, missing clinical values."""
    more = f" (and {len(cohort.excluded)} excluded, listed below)" if cohort.excluded else ""
    lines = [f"manifest: {cohort.manifest_path}", f"patients: {len(cohort)}{more}"]
    lines += _group_lines(cohort.records, "unlabelled (predicted only, not scored)")
    lines.append(f"sequences: {', '.join(cohort.sequences)}")
    if cohort.height_loss_threshold is not None:
        lines.append(f"labels derived from heights where missing: height loss >= "
                     f"{cohort.height_loss_threshold:.0%} -> 1")
    lines += clinical_lines(table.loc[[r.row for r in cohort.records]], cohort.clinical_columns)
    return "\n".join(lines + excluded_lines(cohort.excluded))


@dataclass(frozen=True)
class WrittenRow:
    """An included manifest row as its cells stand, for the summary of a manifest with problems (no
    Cohort is built then): its label only when the cell is 0 or 1."""

    set: str
    site: str | None
    label: int | None
    roi_placed: bool


def written_rows(table: pd.DataFrame) -> list[WrittenRow]:
    """The rows of table (the included ones: the caller leaves out excluded rows and rows whose cell
    count is wrong). A ROI counts as placed unless all its cells are empty, as cohort check counts it."""
    roi_columns = all(c in table.columns for c in ROI_COLUMNS)
    rows = []
    for cells in table.to_dict("records"):
        label = parse_float(cells.get("label", ""))
        rows.append(WrittenRow(cells.get("set", ""), cells.get("site") or None,
                               int(label) if label in (0.0, 1.0) else None,
                               not roi_columns or not all(is_missing(cells[c]) for c in ROI_COLUMNS)))
    return rows


def written_summary(path: str, table: pd.DataFrame, rows: list[WrittenRow], excluded: int) -> str:
    """The cohort's shape as written, for a manifest with problems (`cohort check` prints it below
    them): table holds the included rows, rows their WrittenRow. Labels derived from heights are left
    to the clean manifest's summary."""
    more = f" (and {excluded} excluded, listed below)" if excluded else ""
    lines = ["the cohort as written, problems aside:", f"manifest: {path}", f"patients: {len(rows)}{more}"]
    lines += _group_lines(rows, "without a label 0/1")
    lines.append(f"ROI placed: {sum(r.roi_placed for r in rows)} of {len(rows)} patients")
    lines.append(f"sequences: {', '.join(image_sequences(list(table.columns))) or 'none'}")
    if all(c in table.columns for c in HEIGHT_COLUMNS):
        lines.append("labels from heights (height_initial, height_followup) are counted once the manifest is clean")
    return "\n".join(lines + clinical_lines(table, clinical_columns(table).kinds))


def clinical_lines(included: pd.DataFrame, kinds: dict[str, str]) -> list[str]:
    """Each clinical column's kind and missing values; a 0/1 flag vcpred knows (steroid, diabetes) with its
    yes and no counts, so that it reads as a flag rather than a number."""
    if not kinds:
        return ["clinical columns: none"]
    lines = ["clinical columns (missing values):"]
    for column, kind in kinds.items():
        cells = [v for v in included[column] if not is_missing(v)]
        missing = len(included) - len(cells)
        if kind == "numeric" and LIMITS.get(column) is FLAG:
            values = [parse_float(v) for v in cells]
            yes, no = values.count(1.0), values.count(0.0)
            other = f", {len(values) - yes - no} neither 0 nor 1" if yes + no < len(values) else ""
            lines.append(f"  {column:<24} yes/no flag ({UNITS[column]}) {missing:>4} missing; {yes} yes, {no} no{other}")
        else:
            lines.append(f"  {column:<24} {kind:<12} {missing:>4} missing")
    return lines


def excluded_lines(excluded: list[ExcludedPatient]) -> list[str]:
    """The patients the manifest's `exclude` column leaves out, each with its row, set and reason."""
    if not excluded:
        return []
    return [f"excluded in the manifest (left out of every step): {len(excluded)} patient(s)",
            *(f"  {patient}" for patient in excluded)]
