"""A human-readable summary of a cohort: counts, events and prevalence, missing values."""

from __future__ import annotations

from collections import defaultdict

from vcpred.cohort.manifest import Cohort, is_missing

import pandas as pd


def _events_line(name: str, labels: list[int | None]) -> str:
    known = [x for x in labels if x is not None]
    events = sum(known)
    prevalence = f"{events / len(known):.1%}" if known else "n/a"
    unlabelled = len(labels) - len(known)
    extra = f", {unlabelled} unlabelled (predicted only, not scored)" if unlabelled else ""
    return f"  {name:<24} {len(labels):>5} patients  {events:>4} events  prevalence {prevalence}{extra}"


def summarize(cohort: Cohort, table: pd.DataFrame) -> str:
    """Patients, events and prevalence per set and site, sequences, missing clinical values."""
    lines = [f"manifest: {cohort.manifest_path}", f"patients: {len(cohort)}"]
    by_set: dict[str, list] = defaultdict(list)
    by_site: dict[tuple[str, str], list] = defaultdict(list)
    for r in cohort.records:
        by_set[r.set].append(r.label)
        by_site[(r.set, r.site or "-")].append(r.label)
    lines.append("per set:")
    lines += [_events_line(s, labels) for s, labels in sorted(by_set.items())]
    if any(r.site for r in cohort.records):
        lines.append("per set and site:")
        lines += [_events_line(f"{s} / {site}", labels) for (s, site), labels in sorted(by_site.items())]
    lines.append(f"sequences: {', '.join(cohort.sequences)}")
    if cohort.height_loss_threshold is not None:
        lines.append(f"labels derived from heights where missing: height loss >= "
                     f"{cohort.height_loss_threshold:.0%} -> 1")
    if cohort.clinical_columns:
        lines.append("clinical columns (missing values):")
        for column, kind in cohort.clinical_columns.items():
            missing = sum(is_missing(v) for v in table[column])
            lines.append(f"  {column:<24} {kind:<12} {missing:>4} missing")
    else:
        lines.append("clinical columns: none")
    return "\n".join(lines)
