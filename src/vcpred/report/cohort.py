"""Cohort section: patients, events, prevalence per set and site, missing values, characteristics,
and the participant flow (manifest -> sets -> splits -> scored / excluded -> runs), with the patients
the manifest's `exclude` column leaves out and their reasons."""

from __future__ import annotations

import numpy as np

from vcpred.cohort.summary import EventCounts, event_counts, labels_by_group, missing_by_set
from vcpred.report.flow import flow_svg
from vcpred.html import Html, note, section, table, tag
from vcpred.report.inputs import ReportInputs


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _count_row(name: list[str], counts: EventCounts) -> list[str]:
    return [*name, counts.patients, counts.labelled, counts.events, _percent(counts.prevalence), counts.unlabelled]


def counts_table(inputs: ReportInputs) -> Html:
    by_set, by_site = labels_by_group(inputs.cohort)
    rows = [_count_row([s, "all"], event_counts(labels)) for s, labels in by_set.items()]
    if any(r.site for r in inputs.cohort.records):
        rows += [_count_row([s, site], event_counts(labels)) for (s, site), labels in by_site.items()]
    header = ["set", "site", "patients", "labelled", "events (collapse)", "prevalence", "unlabelled"]
    return table(header, rows, caption="Patients, events and prevalence per set and site")


def missing_table(inputs: ReportInputs) -> Html:
    missing = missing_by_set(inputs.cohort)
    if not missing:
        return note("The manifest has no clinical columns.")
    sets = sorted({r.set for r in inputs.cohort.records})
    sizes = {s: len(inputs.cohort.subset(s)) for s in sets}
    rows = [[column, inputs.cohort.clinical_columns[column],
             *(f"{per_set[s]} ({per_set[s] / sizes[s]:.0%})" if sizes[s] else "0" for s in sets)]
            for column, per_set in missing.items()]
    return table(["clinical column", "kind", *(f"missing in {s}" for s in sets)], rows,
                 caption="Missing clinical values per column (the models impute the training median and add a "
                         "missing indicator)")


def _describe(values: list, kind: str) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "all missing"
    if kind == "numeric" and set(present) <= {0.0, 1.0}:  # a yes/no column: how many are 1
        ones = sum(v == 1 for v in present)
        return f"{ones} of {len(present)} ({ones / len(present):.0%}) = 1"
    if kind == "numeric":
        q1, median, q3 = np.percentile(np.asarray(present, dtype=float), [25, 50, 75])
        return f"{median:.4g} ({q1:.4g}-{q3:.4g})"
    categories = sorted({str(v) for v in present})
    return ", ".join(f"{c}: {sum(str(v) == c for v in present)}" for c in categories[:6])


def characteristics_table(inputs: ReportInputs) -> Html:
    """Per clinical column and set: median (IQR) or category counts (development vs external)."""
    cohort = inputs.cohort
    sets = sorted({r.set for r in cohort.records})
    rows = [[column, *(_describe([r.clinical.get(column) for r in cohort.subset(s)], kind) for s in sets)]
            for column, kind in cohort.clinical_columns.items()]
    levels = [[r.level for r in cohort.subset(s)] for s in sets]
    if any(v for group in levels for v in group):
        rows.append(["fracture level", *(_describe(group, "categorical") for group in levels)])
    return table(["characteristic", *sets], rows,
                 caption="Characteristics: numeric as median (interquartile range), categorical as counts")


def _split_lines(inputs: ReportInputs) -> list[str]:
    splits = (inputs.splits or {}).get("splits") or []
    if not splits:
        return ["patient-level splits", "(splits file not found)"]
    labels = {r.patient_id: r.label for r in inputs.cohort.records}

    def span(key: str, events: bool) -> str:
        values = sorted({sum(labels.get(p) == 1 for p in s[key]) if events else len(s[key]) for s in splits})
        return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"
    by_site = inputs.splits.get("strategy") == "leave-one-site-out"
    return [f"{len(splits)} leave-one-site-out splits" if by_site
            else f"{len(splits)} patient-level splits (seed {inputs.splits.get('seed')})",
            f"train: {span('train', False)} patients ({span('train', True)} events)",
            f"validation: {span('val', False)} patients ({span('val', True)} events)",
            ("one per development site" if by_site else "stratified by outcome") + "; threshold chosen on validation"]


def exclusion_reasons(cohort) -> list[tuple[str, str, list[str]]]:
    """(reason, set, patient ids) of the patients the manifest excludes, most frequent reason first."""
    groups: dict[tuple[str, str], list[str]] = {}
    for patient in cohort.excluded:
        groups.setdefault((patient.reason, patient.set), []).append(patient.patient_id)
    return [(reason, set_name, ids) for (reason, set_name), ids in
            sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))]


def exclusion_text(cohort) -> str:
    """'2 patient(s) excluded in the manifest: series misses a slice (1 development, 1 external)'."""
    if not cohort.excluded:
        return "no patient excluded in the manifest"
    reasons: dict[str, list[str]] = {}
    for reason, set_name, ids in exclusion_reasons(cohort):
        reasons.setdefault(reason, []).append(f"{len(ids)} {set_name}")
    return (f"{len(cohort.excluded)} patient(s) excluded in the manifest: "
            + "; ".join(f"{reason} ({', '.join(counts)})" for reason, counts in reasons.items()))


def excluded_table(inputs: ReportInputs) -> Html:
    """The excluded patients grouped by reason and set (TRIPOD+AI 20a: the flow's reasons)."""
    rows = [[reason, set_name, len(ids), ", ".join(ids)] for reason, set_name, ids in exclusion_reasons(inputs.cohort)]
    if not rows:
        return note("No patient is excluded in the manifest (its exclude column).")
    return table(["reason (manifest column exclude)", "set", "patients", "patient ids"], rows,
                 caption="Patients excluded in the manifest: in no split, not prepared, not predicted")


def flow(inputs: ReportInputs) -> Html:
    cohort, ev = inputs.cohort, inputs.evaluation
    left_out = {s: sum(e.set == s for e in cohort.excluded) for s in ("development", "external")}
    dev, ext = event_counts([r.label for r in cohort.subset("development")]), \
        event_counts([r.label for r in cohort.subset("external")])
    in_splits = {p for s in (inputs.splits or {}).get("splits", []) for key in ("train", "val") for p in s[key]}
    dev_out = [r.patient_id for r in cohort.subset("development") if r.patient_id not in in_splits] if in_splits else []
    chosen = inputs.ensembles[inputs.ensembles["variant"] == inputs.chosen]
    predicted = set(chosen["patient_id"])
    scored = int(chosen["label"].notna().sum())
    ext_out = [r.patient_id for r in cohort.subset("external") if r.patient_id not in predicted]
    n_runs = int(inputs.per_split[~inputs.per_split["ap"]].shape[0])
    skipped = len(ev.get("skipped_runs") or [])
    return flow_svg(
        manifest=["manifest", f"{len(cohort) + len(cohort.excluded)} patients, {len(cohort.excluded)} excluded "
                  "with a reason", cohort.manifest_path.name],
        development=["development set", f"{dev.patients} patients, {dev.events} events",
                     f"prevalence {_percent(dev.prevalence)}"],
        external=["external (held-out) set", f"{ext.patients} patients, {ext.events} events",
                  f"{ext.unlabelled} unlabelled"],
        splits=_split_lines(inputs),
        scored=["scored by every split model", f"{len(predicted)} predicted by the runs",
                f"{scored} labelled and scored", f"{len(predicted) - scored} unlabelled: predicted, not scored"],
        dev_excluded=["excluded from development", f"{left_out['development']} in the manifest (reasons below)",
                      f"{len(dev_out)} patient(s) in no split"],
        ext_excluded=["excluded from external", f"{left_out['external']} in the manifest (reasons below)",
                      f"{len(ext_out)} patient(s) not predicted"],
        runs=["runs", f"{len(inputs.configs)} configurations, {n_runs} finished split runs, {skipped} skipped",
              "each scored without and with augmented prediction (AP)"])


def cohort_section(inputs: ReportInputs) -> Html:
    splits_file = str(next(iter(inputs.configs.values())).splits)
    return section("cohort", "Cohort and participant flow",
                   tag("p", "Source: the manifest the runs trained on (", tag("code", inputs.cohort.manifest_path),
                       ") and their splits file (", tag("code", splits_file), ")."),
                   counts_table(inputs), missing_table(inputs), characteristics_table(inputs),
                   tag("h3", "Participant flow"), tag("div", flow(inputs), cls="figure"), excluded_table(inputs),
                   note("Unlabelled external patients are predicted but never scored; the external counts "
                        f"refer to the ensemble of {inputs.chosen}."))
