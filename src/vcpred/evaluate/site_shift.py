"""The site-shift check: how each site's images differ, and how easily they are told apart (docs/site_shift.md).

An external AUC measures transfer to new patients; when the external site's images also differ in
acquisition (pixel size, contrast, noise, bias field), it measures transfer to that acquisition too. This
check says so before anyone trusts the number. From the manifest (`site`, `set`) and the prepared store it
computes, per site and per set:

- acquisition summaries (median and IQR over patients): the source's pixel spacing, the crop's size in
  native pixels, and intensity statistics of the native crop on the main slice (after N4, before the
  per-crop normalisation): mean, SD, SD/mean, quantiles, and a noise estimate;
- separability: a cross-validated AUC of a logistic regression that tells one site (or the external set)
  from the rest by simple statistics of the prepared main frame, the image the model sees (its intensity
  histogram after z-scoring and its neighbour-difference noise at two lags). The per-crop normalisation
  equalises mean and SD, so what is left is the shape of the distribution, resolution and noise texture.

Patients need no label: the check runs on unlabelled images too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

from vcpred.cohort.manifest import Cohort, PatientRecord
from vcpred.errors import VcpredError
from vcpred.imaging.pipeline import PreparedPatient

# Verdict thresholds on the cross-validated AUC (docs/site_shift.md says why these).
EASY_AUC = 0.90  # at or above: told apart almost every time by a few image statistics
NOTICEABLE_AUC = 0.70  # at or above: a clear acquisition difference
DEFAULT_FOLDS = 5
# Label shuffles for the chance band: a cross-validated AUC of unrelated scores spreads more than the
# Mann-Whitney formula says (SD 0.10 against 0.065 for 40 vs 40 patients, measured on pure noise).
DEFAULT_PERMUTATIONS = 20
MIN_PER_GROUP = 2  # patients each side needs for a 2-fold cross-validation at the least

# The prepared frame is z-scored per crop; these bins (z units, open-ended tails) describe its shape.
HISTOGRAM_EDGES = np.concatenate([[-np.inf], np.linspace(-3.0, 3.0, 13), [np.inf]])
HISTOGRAM_NAMES = [f"hist_{lo:+.1f}_{hi:+.1f}" for lo, hi in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:])]
FEATURE_NAMES = [*HISTOGRAM_NAMES, "frame_noise_lag1", "frame_noise_lag2"]

# Acquisition summaries, in table order: name -> what it is (the JSON and docs carry these words).
MEASURES = {
    "pixel_mm": "in-plane pixel spacing of the source series (mm)",
    "slice_mm": "slice spacing of the source series (mm)",
    "crop_px": "crop side in native pixels",
    "crop_mm": "crop side in mm",
    "crop_mean": "mean intensity of the native crop (scanner units)",
    "crop_sd": "SD of the native crop (scanner units)",
    "crop_cv": "SD / mean of the native crop (contrast)",
    "crop_p05": "5th percentile of the native crop",
    "crop_p50": "median of the native crop",
    "crop_p95": "95th percentile of the native crop",
    "crop_noise": "median |difference| of neighbouring pixels in the native crop (noise, scanner units)",
    "crop_noise_rel": "crop_noise / mean of the native crop (relative noise)",
    "frame_noise": "median |difference| of neighbouring pixels in the prepared main frame (z units)",
}


class SiteShiftError(VcpredError):
    """The site-shift check cannot run: no sites, one site, or patients missing from the store."""


@dataclass(frozen=True)
class PatientMeasures:
    """One patient's acquisition summaries and separability features."""

    patient_id: str
    site: str
    set: str
    scanner: str
    acquisition: dict[str, float]
    features: np.ndarray  # FEATURE_NAMES


@dataclass(frozen=True)
class Separation:
    """How well one group of patients is told apart from the rest by the prepared images' statistics."""

    name: str  # e.g. "site D vs the other sites"
    kind: str  # "site" or "set"
    group: str
    n_group: int
    n_rest: int
    folds: int | None  # None: too few patients to cross-validate
    auc: float | None
    chance_mean: float | None  # mean and SD of the same AUC with the group labels shuffled (None: not run)
    chance_sd: float | None
    level: str  # "easy", "noticeable", "hard" or "too few"
    verdict: str

    @property
    def chance_high(self) -> float | None:
        """The top of the chance band: shuffled labels' mean AUC + 2 SD."""
        return None if self.chance_mean is None or self.chance_sd is None else self.chance_mean + 2 * self.chance_sd


@dataclass(frozen=True)
class Classifier:
    """How separability is measured: K folds, the seed of their shuffle and of the label shuffles, and how
    many shuffles make the chance band (0: none)."""

    folds: int = DEFAULT_FOLDS
    seed: int = 0
    permutations: int = DEFAULT_PERMUTATIONS


@dataclass
class SiteShift:
    manifest: str
    store: str
    classifier: Classifier
    patients: pd.DataFrame  # one row per patient: id, site, set, scanner, the measures
    summaries: pd.DataFrame  # kind, group, n, measure, median, q1, q3
    separations: list[Separation]
    features: list[str]  # the features the classifiers used (non-finite ones left out)
    left_out: list[str] = field(default_factory=list)  # features not finite for every patient

    @property
    def headline(self) -> Separation | None:
        """External vs development when both sets exist, else the most separable site."""
        sets = [s for s in self.separations if s.kind == "set"]
        scored = [s for s in self.separations if s.auc is not None]
        return sets[0] if sets else max(scored, key=lambda s: s.auc or 0.0, default=None)


def neighbour_noise(image: np.ndarray, lag: int = 1) -> float:
    """Median absolute difference of pixels `lag` apart along rows and columns: noise plus fine texture,
    robust to the few large steps at edges."""
    image = np.asarray(image, dtype=np.float64)
    if min(image.shape) <= lag:
        return math.nan
    steps = np.concatenate([np.abs(image[lag:] - image[:-lag]).ravel(),
                            np.abs(image[:, lag:] - image[:, :-lag]).ravel()])
    return float(np.median(steps))


def main_frame(prepared: PreparedPatient) -> np.ndarray:
    """The prepared frame on the ROI slice (offset 0), first channel: what the model sees there."""
    at_roi = np.flatnonzero(np.asarray(prepared.frame_offsets) == 0)
    index = int(at_roi[0]) if at_roi.size else len(prepared.frames) // 2
    return np.asarray(prepared.frames[index, 0], dtype=np.float64)


def native_crop(prepared: PreparedPatient) -> np.ndarray:
    """The crop box on the main slice (after N4, before normalisation), within the image (padding left out)."""
    top, left, bottom, right = (int(v) for v in prepared.crop_box)
    rows, cols = prepared.main_slice.shape
    return np.asarray(prepared.main_slice[max(top, 0):min(bottom, rows), max(left, 0):min(right, cols)],
                      dtype=np.float64)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def zscored(frame: np.ndarray) -> np.ndarray:
    """The frame in its own SD units (a z-scored store's frames are unchanged; min-max ones become comparable)."""
    sd = frame.std()
    return (frame - frame.mean()) / sd if sd > 0 else np.full_like(frame, math.nan)


def acquisition_measures(prepared: PreparedPatient) -> dict[str, float]:
    """MEASURES of one prepared patient (NaN where a measure does not exist, e.g. an empty crop)."""
    crop = native_crop(prepared)
    slice_mm, row_mm, col_mm = (float(v) for v in prepared.spacing)
    pixel_mm = (row_mm + col_mm) / 2
    side = int(prepared.crop_box[2] - prepared.crop_box[0])
    values = crop.ravel() if crop.size else np.array([math.nan])
    mean, sd = float(values.mean()), float(values.std())
    p05, p50, p95 = (float(v) for v in np.percentile(values, [5, 50, 95]))
    noise = neighbour_noise(crop) if crop.size else math.nan
    return {"pixel_mm": pixel_mm, "slice_mm": slice_mm, "crop_px": float(side), "crop_mm": side * pixel_mm,
            "crop_mean": mean, "crop_sd": sd, "crop_cv": _ratio(sd, mean), "crop_p05": p05, "crop_p50": p50,
            "crop_p95": p95, "crop_noise": noise, "crop_noise_rel": _ratio(noise, mean),
            "frame_noise": neighbour_noise(zscored(main_frame(prepared)))}


def image_features(prepared: PreparedPatient) -> np.ndarray:
    """FEATURE_NAMES of the prepared main frame: histogram fractions in z units, then noise at lags 1 and 2."""
    z = zscored(main_frame(prepared))
    histogram = np.histogram(z[np.isfinite(z)], HISTOGRAM_EDGES)[0] / max(int(np.isfinite(z).sum()), 1)
    if not np.isfinite(z).all():  # a constant frame has no shape to describe
        histogram = np.full(len(HISTOGRAM_NAMES), math.nan)
    return np.concatenate([histogram, [neighbour_noise(z, 1), neighbour_noise(z, 2)]])


def scanner(prepared: PreparedPatient) -> str:
    """'manufacturer model' of the first sequence as the store's provenance records it ('' when not)."""
    sequences = prepared.provenance.get("sequences") if isinstance(prepared.provenance, dict) else None
    first: object = next(iter(sequences.values()), {}) if isinstance(sequences, dict) else {}
    if not isinstance(first, dict):
        return ""
    return " ".join(str(first[k]) for k in ("manufacturer", "model") if first.get(k)).strip()


def measure_patient(prepared: PreparedPatient, record: PatientRecord) -> PatientMeasures:
    return PatientMeasures(record.patient_id, str(record.site), record.set, scanner(prepared),
                           acquisition_measures(prepared), image_features(prepared))


def check_sites(cohort: Cohort) -> list[str]:
    """The cohort's sites, sorted; SiteShiftError when the manifest has none, misses some, or names one."""
    where = cohort.manifest_path
    if not any(r.site for r in cohort.records):
        raise SiteShiftError(f"{where} has no site column (or it is empty): the site-shift check compares sites; "
                             "add a `site` column naming each patient's hospital or scanner")
    missing = [r.patient_id for r in cohort.records if not r.site]
    if missing:
        raise SiteShiftError(f"{where}: {len(missing)} patient(s) have no site ({', '.join(missing[:5])}"
                             f"{', ...' if len(missing) > 5 else ''}); fill in the site column for every patient")
    sites = sorted({str(r.site) for r in cohort.records})
    if len(sites) < 2:
        raise SiteShiftError(f"{where} names one site ({sites[0]}): the site-shift check compares two or more "
                             "sites")
    return sites


def read_measures(cohort: Cohort, store: str | Path) -> list[PatientMeasures]:
    """Every manifest patient measured from the store; SiteShiftError naming those the store cannot give."""
    from vcpred.imaging.store import StoreError, load_prepared, read_index

    read_index(store)  # no store at all: StoreError saying to prepare
    measures, failures = [], []
    for record in cohort.records:
        try:
            measures.append(measure_patient(load_prepared(store, record.patient_id), record))
        except StoreError as exc:
            failures.append(str(exc))
    if failures:
        raise SiteShiftError(f"{len(failures)} of {len(cohort.records)} patient(s) of {cohort.manifest_path} cannot "
                             f"be read from the prepared store {store} (first: {failures[0]}); run `vcpred prepare "
                             f"{cohort.manifest_path} --out {store}` for this manifest first")
    return measures


def patients_table(measures: list[PatientMeasures]) -> pd.DataFrame:
    return pd.DataFrame([{"patient_id": m.patient_id, "site": m.site, "set": m.set, "scanner": m.scanner,
                          **m.acquisition} for m in measures])


def groups(patients: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(kind, name, mask) for each site, then each set, in sorted order."""
    return ([("site", s, (patients["site"] == s).to_numpy()) for s in sorted(patients["site"].unique())]
            + [("set", s, (patients["set"] == s).to_numpy()) for s in sorted(patients["set"].unique())])


def summaries(patients: pd.DataFrame) -> pd.DataFrame:
    """Median and IQR of each measure per site and per set (NaN values left out; n counts the rest)."""
    rows = []
    for kind, name, mask in groups(patients):
        for measure in MEASURES:
            values = patients.loc[mask, measure].to_numpy(dtype=np.float64)
            values = values[np.isfinite(values)]
            q1, median, q3 = np.percentile(values, [25, 50, 75]) if values.size else (math.nan,) * 3
            rows.append({"kind": kind, "group": name, "measure": measure, "n": int(values.size),
                         "median": float(median), "q1": float(q1), "q3": float(q3)})
    return pd.DataFrame(rows)


def cross_validated_scores(features: np.ndarray, in_group: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of belonging to the group: standardised features, logistic regression,
    stratified K-fold over patients (one row each) with a fixed shuffle."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, in_group.astype(int), cv=splitter, method="predict_proba")[:, 1]


def cross_validated_auc(features: np.ndarray, in_group: np.ndarray, folds: int, seed: int) -> float:
    return float(roc_auc_score(in_group.astype(int), cross_validated_scores(features, in_group, folds, seed)))


def chance_aucs(features: np.ndarray, in_group: np.ndarray, folds: int, classifier: Classifier) -> np.ndarray:
    """The same cross-validated AUC with the group labels shuffled among these patients, once per permutation."""
    rng = np.random.default_rng(classifier.seed)
    return np.array([cross_validated_auc(features, rng.permutation(in_group), folds, classifier.seed)
                     for _ in range(classifier.permutations)])


def level_of(auc: float, chance_high: float | None = None) -> str:
    """easy / noticeable / hard by the thresholds; an AUC within the chance band is hard whatever its value."""
    if chance_high is not None and auc < chance_high:
        return "hard"
    return "easy" if auc >= EASY_AUC else "noticeable" if auc >= NOTICEABLE_AUC else "hard"


@dataclass(frozen=True)
class Comparison:
    """Who is told apart from whom, in words, and which result a shift between them bears on."""

    kind: str  # "site" or "set"
    group: str
    rest: str  # e.g. "the development patients of the other sites"
    stake: str  # e.g. "an external AUC"

    @property
    def subject(self) -> str:
        return f"The {self.group} set" if self.kind == "set" else f"Site {self.group}"

    @property
    def name(self) -> str:
        return f"{self.group} set vs {self.rest}" if self.kind == "set" else f"site {self.group} vs {self.rest}"


def verdict(comparison: Comparison, auc: float | None, n_group: int, n_rest: int,
            chance: tuple[float, float] | None = None) -> str:
    """The plain-words reading of one separation (docs/site_shift.md); chance: (mean, SD) of shuffled labels' AUC."""
    subject, rest, stake = comparison.subject, comparison.rest, comparison.stake
    if auc is None:
        return (f"{subject} has too few patients ({n_group} against {n_rest}) for a cross-validated check; "
                f"at least {MIN_PER_GROUP} on each side are needed.")
    chance_high = None if chance is None else chance[0] + 2 * chance[1]
    level = level_of(auc, chance_high)
    if level == "easy":
        return (f"{subject} is easy to tell apart from {rest} by its prepared images alone (cross-validated AUC "
                f"{auc:.2f}): {stake} measures transfer to a different acquisition, not only to new patients.")
    if level == "noticeable":
        return (f"{subject} can be told apart from {rest} by its prepared images (cross-validated AUC {auc:.2f}): "
                f"its acquisition differs, and part of any change in {stake} may come from that.")
    if chance_high is not None and auc < chance_high:
        assert chance is not None
        return (f"{subject} cannot be told apart from {rest} by its prepared images better than with shuffled "
                f"site labels (cross-validated AUC {auc:.2f}; shuffled: {chance[0]:.2f} ± {2 * chance[1]:.2f}): "
                "these image statistics find no acquisition difference with these patients.")
    return (f"{subject} is hard to tell apart from {rest} by its prepared images (cross-validated AUC {auc:.2f}): "
            "these image statistics find no large acquisition difference (others they do not measure may remain).")


def separation(comparison: Comparison, features: np.ndarray, in_group: np.ndarray,
               classifier: Classifier, fitted: dict | None = None) -> Separation:
    """One group against the rest (the other rows): the cross-validated AUC (None when either side is too
    small to cross-validate), its chance band and its verdict. fitted: AUCs already computed on the same
    rows and labels (the external set and its one site against the development set are one comparison)."""
    n_group, n_rest = int(in_group.sum()), int((~in_group).sum())
    folds = min(classifier.folds, n_group, n_rest)
    words = (comparison.name, comparison.kind, comparison.group, n_group, n_rest)
    if folds < MIN_PER_GROUP:
        return Separation(*words, None, None, None, None, "too few", verdict(comparison, None, n_group, n_rest))
    fitted = {} if fitted is None else fitted
    key = (features.tobytes(), in_group.tobytes())
    if key not in fitted:
        fitted[key] = (cross_validated_auc(features, in_group, folds, classifier.seed),
                       chance_aucs(features, in_group, folds, classifier))
    auc, shuffled = fitted[key]
    chance = (float(shuffled.mean()), float(shuffled.std(ddof=1))) if len(shuffled) > 1 else None
    mean, sd = chance if chance else (None, None)
    level = level_of(auc, None if chance is None else chance[0] + 2 * chance[1])
    return Separation(*words, folds, auc, mean, sd, level, verdict(comparison, auc, n_group, n_rest, chance))


def finite_features(measures: list[PatientMeasures]) -> tuple[np.ndarray, list[str], list[str]]:
    """(features [patients, used], used names, left-out names): a feature not finite for every patient is left out."""
    matrix = np.vstack([m.features for m in measures])
    keep = np.isfinite(matrix).all(axis=0)
    return (matrix[:, keep], [n for n, k in zip(FEATURE_NAMES, keep) if k],
            [n for n, k in zip(FEATURE_NAMES, keep) if not k])


def site_comparison(site: str, sites: np.ndarray, sets: np.ndarray) -> tuple[Comparison, np.ndarray]:
    """(comparison, rows it uses) of one site: its patients against the development patients of the other
    sites (what a validation on this site's patients tests), or all other sites' patients when those have
    no development patients. Against everyone else, a site like the development sites would still score
    well whenever a very different site sits among the rest."""
    mine = sites == site
    others = ~mine & (sets == "development")
    rest = "the development patients of the other sites"
    if not others.any():
        others, rest = ~mine, "the other sites"
    stake = (f"an external AUC at site {site}" if (sets[mine] == "external").all()
             else f"a validation on site {site}'s patients (e.g. leave-one-site-out)")
    return Comparison("site", site, rest, stake), mine | others


def separations(patients: pd.DataFrame, features: np.ndarray, classifier: Classifier) -> list[Separation]:
    """The external set against the development set (when both exist), then each site (site_comparison)."""
    sites, sets = patients["site"].to_numpy(), patients["set"].to_numpy()
    found: list[Separation] = []
    fitted: dict = {}
    if {"development", "external"} <= set(sets):
        found.append(separation(Comparison("set", "external", "the development set", "an external AUC"), features,
                                sets == "external", classifier, fitted))
    for site in sorted(set(sites)):
        comparison, rows = site_comparison(site, sites, sets)
        found.append(separation(comparison, features[rows], sites[rows] == site, classifier, fitted))
    return found


def check_site_shift(cohort: Cohort, store: str | Path, classifier: Classifier | None = None) -> SiteShift:
    """The whole check for a cohort whose patients are in the prepared store."""
    classifier = classifier or Classifier()
    if classifier.folds < 2:
        raise SiteShiftError(f"--folds must be 2 or more, got {classifier.folds}")
    if classifier.permutations < 0 or classifier.permutations == 1:
        raise SiteShiftError(f"--permutations must be 0 (no chance band) or 2 or more, got {classifier.permutations}")
    check_sites(cohort)
    measures = read_measures(cohort, store)
    patients = patients_table(measures)
    features, used, left_out = finite_features(measures)
    if not used:
        raise SiteShiftError(f"the prepared main frames in {store} are constant for some patients: there is no "
                             "image statistic to compare sites with")
    # One BLAS thread: hundreds of small fits, each 12x the CPU time when BLAS threads contend for the cores.
    # The limit reaches the libraries loaded when it is set: scikit-learn's (and scipy's) are imported above.
    with threadpool_limits(limits=1):
        found = separations(patients, features, classifier)
    return SiteShift(str(cohort.manifest_path), str(store), classifier, patients, summaries(patients), found, used,
                     left_out)
