"""A human-readable summary of a cohort: counts, events and prevalence, missing values.

The counting helpers (event_counts, labels_by_group, missing_by_set) are shared with the HTML
report (vcpred.report), so the CLI summary and the report cannot disagree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from vcpred.cohort.manifest import Cohort, ExcludedPatient, is_missing

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
    by_set: dict[str, list] = defaultdict(list)
    by_site: dict[tuple[str, str], list] = defaultdict(list)
    for r in cohort.records:
        by_set[r.set].append(r.label)
        by_site[(r.set, r.site or "-")].append(r.label)
    return dict(sorted(by_set.items())), dict(sorted(by_site.items()))


def missing_by_set(cohort: Cohort) -> dict[str, dict[str, int]]:
    """column -> set -> number of patients whose value is missing."""
    sets = sorted({r.set for r in cohort.records})
    return {column: {s: sum(r.clinical.get(column) is None for r in cohort.records if r.set == s) for s in sets}
            for column in cohort.clinical_columns}


def _events_line(name: str, labels: list[int | None]) -> str:
    counts = event_counts(labels)
    prevalence = "n/a" if counts.prevalence is None else f"{counts.prevalence:.1%}"
    extra = f", {counts.unlabelled} unlabelled (predicted only, not scored)" if counts.unlabelled else ""
    return f"  {name:<24} {counts.patients:>5} patients  {counts.events:>4} events  prevalence {prevalence}{extra}"


def summarize(cohort: Cohort, table: pd.DataFrame) -> str:
    """Patients, events and prevalence per set and site, sequences, missing clinical values."""
    more = f" (and {len(cohort.excluded)} excluded, listed below)" if cohort.excluded else ""
    lines = [f"manifest: {cohort.manifest_path}", f"patients: {len(cohort)}{more}"]
    by_set, by_site = labels_by_group(cohort)
    lines.append("per set:")
    lines += [_events_line(s, labels) for s, labels in by_set.items()]
    if any(r.site for r in cohort.records):
        lines.append("per set and site:")
        lines += [_events_line(f"{s} / {site}", labels) for (s, site), labels in by_site.items()]
    lines.append(f"sequences: {', '.join(cohort.sequences)}")
    if cohort.height_loss_threshold is not None:
        lines.append(f"labels derived from heights where missing: height loss >= "
                     f"{cohort.height_loss_threshold:.0%} -> 1")
    if cohort.clinical_columns:
        lines.append("clinical columns (missing values):")
        included = table.loc[[r.row for r in cohort.records]]
        for column, kind in cohort.clinical_columns.items():
            missing = sum(is_missing(v) for v in included[column])
            lines.append(f"  {column:<24} {kind:<12} {missing:>4} missing")
    else:
        lines.append("clinical columns: none")
    return "\n".join(lines + excluded_lines(cohort.excluded))


def excluded_lines(excluded: list[ExcludedPatient]) -> list[str]:
    """The patients the manifest's `exclude` column leaves out, each with its row, set and reason."""
    if not excluded:
        return []
    return [f"excluded in the manifest (left out of every step): {len(excluded)} patient(s)",
            *(f"  {patient}" for patient in excluded)]
