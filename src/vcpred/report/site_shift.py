"""Site-shift section: how each site's prepared images differ, and how easily they are told apart
(vcpred.evaluate.site_shift, the same check as `vcpred cohort shift`; docs/site_shift.md)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from vcpred.cohort.manifest import Cohort
from vcpred.evaluate.site_shift import (
    EASY_AUC, MEASURES, NOTICEABLE_AUC, Classifier, SiteShift, SiteShiftError, check_site_shift,
)
from vcpred.evaluate.site_shift_outputs import SEPARABILITY_HEADER, acquisition_rows, separability_rows
from vcpred.html import Html, bullet_list, note, section, table, tag
from vcpred.imaging.store import StoreError
from vcpred.report.inputs import ReportInputs

ANCHOR, TITLE = "site-shift", "Site shift: can the images tell the sites apart?"
CLASSIFIER = Classifier()  # the defaults of `vcpred cohort shift`
# Checks already made in this process, by what decides them (the patients' sites and sets, their store
# files' sha256 and params, the classifier): a second report of the same runs does not repeat the fits.
_done: dict[tuple, SiteShift] = {}


def _key(cohort: Cohort, store: Path, classifier: Classifier) -> tuple:
    from vcpred.imaging.store import store_digest

    patients = tuple((r.patient_id, r.site, r.set) for r in cohort.records)
    return patients, store_digest(store, [p for p, _, _ in patients]), classifier


def site_shift(cohort: Cohort, store: Path, classifier: Classifier = CLASSIFIER) -> SiteShift:
    """check_site_shift, made once per process for the same patients, store files and classifier."""
    key = _key(cohort, store, classifier)
    if key not in _done:
        _done.clear()  # one report at a time: keep only the latest
        _done[key] = check_site_shift(cohort, store, classifier)
    return _done[key]


def _method(classifier: Classifier, n_features: int) -> Html:
    return note(f"Separability: a logistic regression on {n_features} standardised statistics of each patient's "
                "prepared main frame (the image the model sees: its intensity histogram in z units and its "
                f"neighbour-difference noise at lags 1 and 2), {classifier.folds}-fold stratified cross-validation "
                f"over patients (seed {classifier.seed}); chance: the same AUC with the labels shuffled "
                f"{classifier.permutations} times. Readings: AUC ≥ {EASY_AUC} easy, ≥ {NOTICEABLE_AUC} noticeable, "
                "below that, or within the shuffled labels' mean + 2 SD, hard to tell apart. The same check writes "
                "JSON and CSV with `vcpred cohort shift MANIFEST --store STORE --out DIR` (docs/site_shift.md).")


def site_shift_section(inputs: ReportInputs) -> Html:
    if inputs.store_dir is None:
        return section(ANCHOR, TITLE, note("The prepared store the runs trained on was not found: no site-shift "
                                           "check (run `vcpred cohort shift` with the store)."))
    try:
        shift = site_shift(cast(Cohort, inputs.cohort), inputs.store_dir)
    except (SiteShiftError, StoreError) as exc:
        return section(ANCHOR, TITLE, note(f"No site-shift check: {exc}"))
    header, rows = acquisition_rows(shift)
    headline = shift.headline
    return section(
        ANCHOR, TITLE,
        tag("p", tag("strong", headline.verdict)) if headline else "",
        bullet_list([s.verdict for s in shift.separations if s is not headline]),
        table(SEPARABILITY_HEADER, separability_rows(shift.separations), cls="numbers",
              caption="How well each site, and the external set, is told apart from the rest"),
        _method(shift.classifier, len(shift.features)),
        table(["measure", "what it is", *header[1:]], [[row[0], MEASURES[row[0]], *row[1:]] for row in rows],
              cls="numbers", caption="Acquisition per site and set: median [interquartile range] over patients "
                                     "(native crop: the crop box on the main slice after N4, before normalisation)"))
