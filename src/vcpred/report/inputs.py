"""Everything the report reads, found and checked before anything is drawn.

EVAL (from `vcpred evaluate`) is the source of every number; the runs folder it names gives the
configurations (config.yaml) and the per-split predictions for the ROC bands; the runs' manifest,
splits file and prepared store give the cohort and the preprocessing record; an exported model
directory (optional) gives the heat-map gallery and the model card; further model directories of
the same evaluation add their own blocks to the gallery.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from vcpred import console
from vcpred.errors import VcpredError
from vcpred.evaluate.calibration import VariantCalibration, read_calibration
from vcpred.evaluate.compare import Comparisons, read_comparisons
from vcpred.evaluate.decision import DecisionCurves, read_decision
from vcpred.evaluate.outputs import GENERATOR as EVALUATE_GENERATOR
from vcpred.evaluate.outputs import evaluation_problems
from vcpred.evaluate.selection import Selection, read_selection
from vcpred.evaluate.sites import VariantSites, read_sites
from vcpred.evaluate.transfer import Transfer, read_transfer
from vcpred.evaluate.variants import Variant
from vcpred.bundle.files import BundleMeta, checked_meta, parse_meta
from vcpred.runs import RunRecord, finished_records, read_finished, run_dirs, unfinished_reason
from vcpred.training.run_inputs import CheckedInputs, check_run_inputs

EVAL_FILES = ("summary.csv", "per_split.csv", "evaluation.json", "ensemble_predictions.csv")
THRESHOLD_TOLERANCE = 1e-6  # export and evaluate compute the same median of the same Youden thresholds


class ReportError(VcpredError):
    """The inputs of `vcpred report` are missing, incomplete or do not belong together."""


@dataclass
class ReportInputs:
    eval_dir: Path
    summary: pd.DataFrame  # summary.csv: one row per variant x set
    per_split: pd.DataFrame  # per_split.csv
    evaluation: dict  # evaluation.json (its comparisons, calibration and decision curves typed below)
    ensembles: pd.DataFrame  # ensemble_predictions.csv
    runs_dir: Path
    configs: dict[str, RunRecord]  # configuration -> the record of its first finished split
    cohort: object  # vcpred.cohort.Cohort
    splits: dict | None  # splits.json content (None when not found)
    store_params: dict | None  # the prepared store's index.json params
    store_dir: Path | None
    model_dir: Path | None = None
    bundle: BundleMeta | None = None  # bundle.json
    chosen: str = ""  # the variant label the gallery, failures and card are about
    extra_models: list[tuple[Path, BundleMeta]] = field(default_factory=list)  # more (model_dir, bundle) for the gallery
    notes: list[str] = field(default_factory=list)  # what could not be found, said in the report
    losses: dict[str, list] = field(default_factory=dict)  # configuration -> metrics.json 'loss' of each run
    gallery_per_cell: int = 2  # heat maps per outcome (TP, FP, FN, TN): each is one full prediction

    @property
    def comparisons(self) -> Comparisons:
        """evaluation.json `comparisons`, typed (read_eval checked that it reads)."""
        return read_comparisons(self.evaluation["comparisons"])

    @property
    def calibration(self) -> dict[str, VariantCalibration]:
        """evaluation.json `calibration`: variant label -> its ensemble's calibration."""
        return read_calibration(self.evaluation.get("calibration"))

    @property
    def selection(self) -> Selection | None:
        """evaluation.json `selection` (None: an evaluation from before the selection rule was recorded)."""
        return read_selection(self.evaluation.get("selection"))

    @property
    def development_sites(self) -> dict[str, VariantSites]:
        """evaluation.json `sites`: variant label -> out-of-split validation AUC pooled and per site ({}: none)."""
        return read_sites(self.evaluation.get("sites"))

    @property
    def transfer(self) -> Transfer | None:
        """evaluation.json `transfer`, about the report's chosen variant (None: an evaluation from before it)."""
        transfer = read_transfer(self.evaluation.get("transfer"))
        return None if transfer is None else replace(transfer, chosen=self.chosen)

    @property
    def decision_curves(self) -> DecisionCurves | None:
        """evaluation.json `decision_curves` (None when the evaluation has none)."""
        return read_decision(self.evaluation.get("decision_curves"))

    def undefined_threshold(self, variant: str | None = None) -> str | None:
        """Why the ensemble of variant (default: the chosen one) has no threshold (evaluation.json
        `threshold_note`, e.g. constant predictions); None when it has one or there is no ensemble."""
        ensemble = self.evaluation.get("ensembles", {}).get(self.chosen if variant is None else variant)
        threshold = None if ensemble is None else ensemble.get("threshold")
        if ensemble is None or (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
            return None
        return ensemble.get("threshold_note") or "undefined (no split model has a finite threshold)"

    @property
    def training_data(self) -> dict:
        """{synthetic, evidence} over the configurations (each one's first finished split): synthetic when any is."""
        from vcpred.cohort.provenance import combined

        return combined([run.training_data for run in self.configs.values()])

    @property
    def synthetic(self) -> bool:
        return bool(self.training_data["synthetic"])

    @property
    def models(self) -> list[tuple[Path, BundleMeta]]:
        """(model_dir, bundle.json) of every model given, the chosen one first."""
        first = [(self.model_dir, self.bundle)] if self.bundle is not None else []
        return first + self.extra_models


def find_path(recorded: str | Path, anchors: list[Path]) -> Path | None:
    """A path recorded relative to some earlier working directory, found again: as given, or its
    trailing parts under one of anchors (so `runs/demo/runs` is found from inside runs/demo too)."""
    recorded = Path(recorded)
    if recorded.exists():
        return recorded
    parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
    for start in range(len(parts)):
        for anchor in anchors:
            candidate = anchor.joinpath(*parts[start:])
            if candidate.exists():
                return candidate
    return None


def read_eval(eval_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict, pd.DataFrame]:
    if not eval_dir.is_dir():
        raise ReportError(f"EVAL {eval_dir} does not exist or is not a folder; pass the --out folder of "
                          "`vcpred evaluate`")
    missing = [name for name in EVAL_FILES if not (eval_dir / name).is_file()]
    if missing:
        raise ReportError(f"{eval_dir} is not a `vcpred evaluate` output (missing {', '.join(missing)}); "
                          "run `vcpred evaluate RUNS --out EVAL` first")
    try:
        evaluation = json.loads((eval_dir / "evaluation.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{eval_dir / 'evaluation.json'} is not readable JSON ({exc}); evaluate again") from None
    if not isinstance(evaluation, dict) or evaluation.get("generator") != EVALUATE_GENERATOR:
        raise ReportError(f"{eval_dir / 'evaluation.json'} was not written by `vcpred evaluate`")
    problems = evaluation_problems(eval_dir, EVAL_FILES)  # every file read below, as evaluate wrote it
    if problems:
        runs = evaluation.get("runs") if isinstance(evaluation.get("runs"), str) else "RUNS"
        raise ReportError(f"{'; '.join(problems)}: the evaluation was edited or damaged after it was written; "
                          f"run `vcpred evaluate {runs} --out {eval_dir}` again")
    try:  # the typed parts: a file that does not fit them fails here, not halfway through the page
        read_comparisons(evaluation.get("comparisons"))
        read_calibration(evaluation.get("calibration"))
        read_decision(evaluation.get("decision_curves"))
        read_selection(evaluation.get("selection"))
        read_sites(evaluation.get("sites"))
        read_transfer(evaluation.get("transfer"))
    except ValueError as exc:
        raise ReportError(f"{eval_dir / 'evaluation.json'} does not hold what `vcpred evaluate` writes ({exc}); "
                          "evaluate again") from None
    tables = []
    for name in ("summary.csv", "per_split.csv", "ensemble_predictions.csv"):
        try:
            tables.append(pd.read_csv(eval_dir / name, dtype={"patient_id": str}))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ReportError(f"{eval_dir / name} is not a readable CSV table ({exc}); evaluate again") from None
    summary, per_split, ensembles = tables
    for frame in (summary, per_split):  # evaluate writes booleans as true/false text
        for column in ("ap", "clinical", "best"):
            if column in frame:
                frame[column] = frame[column].astype(str).str.lower().eq("true")
    return summary, per_split, evaluation, ensembles


def read_configs(runs_dir: Path) -> dict[str, RunRecord]:
    """configuration -> the record of its first finished split run."""
    configs = {}
    for run_dir in run_dirs(runs_dir):
        if run_dir.parent.name not in configs:
            record, _ = read_finished(run_dir)
            if record is not None:
                configs[run_dir.parent.name] = record
    return configs


def read_losses(runs_dir: Path) -> dict[str, list]:
    """configuration -> the 'loss' each finished split run's metrics.json records (None: not recorded)."""
    from vcpred.runs import recorded_loss

    losses: dict[str, list] = {}
    for run_dir in run_dirs(runs_dir):
        if unfinished_reason(run_dir) is None:
            losses.setdefault(run_dir.parent.name, []).append(recorded_loss(run_dir))
    return losses


def locate_runs(evaluation: dict, eval_dir: Path, override: str | None) -> Path:
    if override:
        runs = Path(override)
        if not runs.is_dir():
            raise ReportError(f"--runs {runs} is not a folder")
        return runs
    runs = find_path(evaluation["runs"], [Path.cwd(), eval_dir.parent])
    if runs is None or not runs.is_dir():
        raise ReportError(f"the runs folder this evaluation read ({evaluation['runs']}) is not found from "
                          f"{Path.cwd()}; pass --runs RUNS")
    return runs


def check_runs_match(configs: dict[str, RunRecord], evaluation: dict, runs_dir: Path) -> None:
    evaluated = {v["configuration"] for v in evaluation["variants"]}
    missing = sorted(evaluated - set(configs))
    if missing:
        raise ReportError(f"{runs_dir} has no finished runs of {', '.join(missing)}, which this evaluation "
                          "scored: pass the runs folder the evaluation was made from (--runs)")


def read_json(path: Path | None) -> dict | None:
    try:
        return json.loads(path.read_text()) if path else None
    except (OSError, json.JSONDecodeError):
        return None


def locate_cohort(configs: dict[str, RunRecord], anchors: list[Path], override: str | None, checked: CheckedInputs):
    """The manifest the runs trained on (or --manifest, which must hold the same) as a Cohort; image
    files not required. A --manifest that differs from the runs' own only where the report's numbers
    do not depend on it (image paths, ROIs: what the gallery reads) is used, and said so."""
    from vcpred.cohort import load_manifest
    from vcpred.training.run_inputs import InputsChanged

    recorded = str(next(iter(configs.values())).manifest)
    manifest = Path(override) if override else find_path(recorded, anchors)
    if manifest is None or not manifest.is_file():
        raise ReportError(f"the runs' manifest {recorded} is not found; pass --manifest MANIFEST")
    try:
        return load_manifest(checked.verify("manifest", manifest), check_files=False)
    except InputsChanged:
        own = find_path(recorded, anchors) if override else None
        if own is None or not own.is_file():
            raise
        runs_cohort = load_manifest(checked.verify("manifest", own), check_files=False)
        given = load_manifest(manifest, check_files=False)
        if _described_alike(runs_cohort, given):
            console.say(f"note: --manifest {manifest} differs from the runs' manifest {own} only in image paths, "
                        "series or ROIs: the cohort is described from either, the gallery reads its images")
            return given
        raise


def _described_alike(a, b) -> bool:
    """The same patients with the same set, label, level, site and clinical values (what the report's
    cohort description and numbers use)."""
    def described(cohort) -> list:
        def value(v):  # a missing value (NaN) equals another missing value
            return None if isinstance(v, float) and math.isnan(v) else v

        return [(r.patient_id, r.set, r.label, r.level, r.site, sorted((k, value(v)) for k, v in r.clinical.items()))
                for r in cohort.records]

    return described(a) == described(b)


def _store_params(store_dir: Path | None, recorded: Path) -> tuple[dict | None, str]:
    """(the store's preparation params, '') or (None, why they are not shown)."""
    from vcpred.imaging.store import StoreError, store_params

    if store_dir is None:
        return None, f"prepared store {recorded} not found"
    try:
        return store_params(store_dir), ""
    except StoreError as exc:
        return None, str(exc)


def bundle_variant(bundle: BundleMeta) -> str:
    """The evaluation's name for an exported model (configuration, with or without AP)."""
    return Variant(bundle.configuration, bundle.ap).label


def check_bundle(bundle: BundleMeta, model_dir: Path, inputs: ReportInputs) -> None:
    """The model directory exports a configuration of these runs: same variant, same threshold."""
    variant = bundle_variant(bundle)
    ensembles = inputs.evaluation.get("ensembles", {})
    if variant not in ensembles:
        raise ReportError(f"model directory {model_dir} exports {variant!r}, which this evaluation does not "
                          f"contain ({', '.join(sorted(ensembles))}): it was exported from another runs folder")
    expected = ensembles[variant].get("threshold")
    threshold = bundle.split_models_threshold  # before any recalibration: the scale evaluate computes on
    if expected is None or not math.isclose(threshold, expected, rel_tol=0, abs_tol=THRESHOLD_TOLERANCE):
        raise ReportError(f"model directory {model_dir}: its threshold {threshold:.6f} differs from the "
                          f"evaluation's {variant!r} ensemble threshold ({expected}); it was exported from other "
                          "runs (or with another --aggregate): export it again from this evaluation's runs")


def load_inputs(eval_dir: str | Path, *, model_dir: str | Path | list | tuple | None = None,
                runs: str | None = None, manifest: str | None = None) -> ReportInputs:
    """Read and cross-check every input; ReportError saying what is wrong and how to fix it."""
    eval_dir = Path(eval_dir)
    summary, per_split, evaluation, ensembles = read_eval(eval_dir)
    runs_dir = locate_runs(evaluation, eval_dir, runs)
    configs = read_configs(runs_dir)
    check_runs_match(configs, evaluation, runs_dir)
    checked = check_run_inputs(finished_records(runs_dir))  # every input found again is verified
    anchors = [Path.cwd(), eval_dir.parent, runs_dir.parent]
    cohort = locate_cohort(configs, anchors, manifest, checked)
    first = next(iter(configs.values()))
    store_dir = checked.verify("store", find_path(str(first.store), anchors))
    params, missing = _store_params(store_dir, first.store)
    splits_path = checked.verify("splits", find_path(str(first.splits), anchors))
    inputs = ReportInputs(eval_dir, summary, per_split, evaluation, ensembles, runs_dir, configs, cohort,
                          read_json(splits_path), params, store_dir, chosen=evaluation["best"],
                          losses=read_losses(runs_dir))
    if missing:
        inputs.notes.append(f"{missing}: preprocessing from the model only")
    model_dirs = [] if model_dir is None else [model_dir] if isinstance(model_dir, (str, Path)) else list(model_dir)
    seen: dict[str, Path] = {}
    for index, directory in enumerate(Path(d) for d in model_dirs):
        bundle = parse_meta(checked_meta(directory), directory)  # every path, --gallery 0 included: hashes checked
        check_bundle(bundle, directory, inputs)
        variant = bundle_variant(bundle)
        if variant in seen:
            raise ReportError(f"model directories {seen[variant]} and {directory} both export {variant!r}: "
                              "give each variant once")
        seen[variant] = directory
        if index == 0:
            inputs.model_dir, inputs.bundle, inputs.chosen = directory, bundle, variant
        else:
            inputs.extra_models.append((directory, bundle))
    return inputs
