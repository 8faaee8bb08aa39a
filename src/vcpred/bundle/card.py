"""MODEL_CARD.md for an exported model: intended use, notice (and a synthetic-data warning), the
training population (development set only) and the external evaluation population, the loss,
what validation data chose, performance (with the ensemble's DeLong CI and calibration from
`vcpred evaluate`), the export's recalibration and its out-of-sample calibration, limits. "n/a"
stands wherever a number could not be computed."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from vcpred import RESEARCH_NOTICE
from vcpred.cohort.provenance import is_synthetic, recorded, warning_sentence
from vcpred.errors import ConfigError
from vcpred.evaluate.outputs import evaluation_problems
from vcpred.evaluate.per_split import external_reason
from vcpred.evaluate.small_sample import SampleSize, as_sentence
from vcpred.evaluate.transfer import chosen_sentence, read_transfer
from vcpred.evaluate.variants import Variant
from vcpred.bundle.files import BundleMeta
from vcpred.bundle.method import clinical_step, finite, loss_text, validation_uses
from vcpred.runs import recorded_loss


def _set_counts(cohort, set_name: str):
    """EventCounts (patients, labelled, events) of one set of the manifest."""
    from vcpred.cohort.summary import event_counts

    return event_counts([r.label for r in cohort.subset(set_name)])


def _set_lines(cohort, set_name: str) -> list[str]:
    """Patients, events and sites of one set of the manifest."""
    counts = _set_counts(cohort, set_name)
    prevalence = "" if counts.prevalence is None else f" (prevalence {counts.prevalence:.1%})"
    sites = sorted({r.site for r in cohort.subset(set_name) if r.site})
    return [f"- {set_name} set: {counts.patients} patients, {counts.events} with collapse among "
            f"{counts.labelled} labelled{prevalence}",
            f"- sites: {', '.join(sites) if sites else 'not recorded'}"]


NO_EXTERNAL = ("none: the cohort has no external patients, so no performance or calibration was measured outside the "
               "development set")


def _external_lines(cohort) -> list[str]:
    """The external evaluation population: what it is, what it was used for, and whether it is small."""
    counts = _set_counts(cohort, "external")
    if not counts.patients:
        return [f"- {NO_EXTERNAL}"]
    size = SampleSize("the external set", counts.events, counts.labelled - counts.events)
    warning = size.warning("its AUC and calibration are imprecise (read their confidence intervals)")
    return [*_set_lines(cohort, "external"),
            "- used only to measure performance: never for training, thresholds or any choice",
            *([f"- **{as_sentence(warning)}**"] if warning else [])]


def _span(values: list[int]) -> str:
    return str(values[0]) if values[0] == values[-1] else f"{values[0]}-{values[-1]}"


def _split_line(sources) -> str:
    """How many split models, and how many patients each saw (config.yaml `patients`)."""
    sides = [s.patients for s in sources]
    train = sorted(p["train"] for p in sides if "train" in p)
    val = sorted(p["validation"] for p in sides if "validation" in p)
    counts = f" ({_span(train)} train / {_span(val)} validation patients each)" if train and val else ""
    return (f"- {len(sources)} split models, each trained on a patient-level split of the development set into "
            f"train and validation patients{counts}")


def _populations(sources, training_data: dict) -> tuple[list[str], list[str], int | None]:
    """(training population: the development set only; external evaluation population; how many
    external patients the cohort has, None when unknown), from the manifest the runs were trained on
    (when it is still readable)."""
    from vcpred.cohort import load_manifest
    from vcpred.errors import VcpredError

    manifest = sources[0].manifest
    origin = (f"- origin: synthetic cohort ({training_data['evidence']})" if is_synthetic(training_data)
              else f"- origin: not marked synthetic ({training_data['evidence']})")
    try:
        cohort = load_manifest(manifest)
    except (VcpredError, OSError) as exc:
        unreadable = f"- training manifest {manifest} not readable at export time ({exc})"
        return [unreadable, origin, _split_line(sources)], [unreadable], None
    return ([*_set_lines(cohort, "development"), origin, _split_line(sources)], _external_lines(cohort),
            _set_counts(cohort, "external").patients)


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if finite(value) else "n/a"


def _mean_sd(mean, sd) -> str:
    if not finite(mean):
        return "n/a"
    return f"{mean:.3f} ({sd:.3f})" if finite(sd) else f"{mean:.3f} (SD n/a: one split)"


def _ensemble_lines(row: pd.Series, ensemble: dict) -> list[str]:
    """External performance of the split ensemble (the exported model's own output)."""
    if not finite(row.get("ensemble_auc", math.nan)):
        return [f"- external ensemble: not scored ({external_reason(ensemble)}); no calibration was measured on "
                "external patients"]
    return [
        f"- **external AUC of the ensemble (the exported model): {_fmt(row['ensemble_auc'])} "
        f"(95 % CI {_fmt(row.get('ensemble_auc_ci_low'))}-{_fmt(row.get('ensemble_auc_ci_high'))}, DeLong)**, "
        f"{ensemble.get('n', 'n/a')} patients with {ensemble.get('n_cases', 'n/a')} events",
        f"- at the development threshold {_fmt(row.get('ensemble_threshold'), 4)}: sensitivity "
        f"{_fmt(row.get('ensemble_sensitivity'))}, specificity {_fmt(row.get('ensemble_specificity'))} (no CIs)",
        f"- calibration on the external set: slope {_fmt(ensemble.get('calibration_slope'), 2)}, intercept "
        f"(calibration-in-the-large) {_fmt(ensemble.get('calibration_intercept'), 2)}, Brier score "
        f"{_fmt(row.get('ensemble_brier'))} (slope 1 and intercept 0 = perfectly calibrated; no CIs)"]


EVAL_FILES = ("summary.csv", "evaluation.json")  # what the card reads of EVAL


def check_eval(eval_dir: str | Path, runs: str | Path = "RUNS") -> None:
    """ConfigError (one line) unless EVAL's files the card reads are those `vcpred evaluate` wrote
    (their sha256 in its sha256.json, as `vcpred report` checks them): an edited AUC must not reach
    a model card. `vcpred export` calls it before any work, and the card again when it reads EVAL."""
    eval_dir = Path(eval_dir)
    again = f"run `vcpred evaluate {runs} --out {eval_dir}` again, or export without --eval"
    if not eval_dir.is_dir():
        raise ConfigError(f"--eval {eval_dir} does not exist or is not a folder; pass the --out folder of `vcpred "
                          "evaluate`, or export without --eval")
    problems = evaluation_problems(eval_dir, EVAL_FILES)
    if problems:
        raise ConfigError(f"--eval {eval_dir}: {'; '.join(problems)}: the model card shows only an evaluation as "
                          f"`vcpred evaluate` wrote it; {again}")


def _read_eval(eval_dir: Path) -> tuple[pd.DataFrame, dict]:
    check_eval(eval_dir)
    summary = pd.read_csv(Path(eval_dir) / "summary.csv")
    evaluation = json.loads((Path(eval_dir) / "evaluation.json").read_text())
    return summary, evaluation


def _small_sample_lines(evaluation: dict) -> list[str]:
    """evaluation.json `small_sample` warnings (evaluate's rule), one bold line each."""
    warnings = (evaluation.get("small_sample") or {}).get("warnings") or []
    return [f"- **{as_sentence(w)}**" for w in warnings]


def _transfer_lines(evaluation: dict, variant: str) -> list[str]:
    """A bold line when this model collapses at the external set or falls below the reference there
    (evaluation.json `transfer`, evaluate/transfer.py); none otherwise or for an evaluation without it."""
    try:
        transfer = read_transfer(evaluation.get("transfer"))
    except ValueError as exc:
        return [f"- transfer check not readable ({exc})"]
    sentence = chosen_sentence(replace(transfer, chosen=variant), "This model") if transfer is not None else ""
    return [f"- **Transfer check: {sentence}**"] if sentence else []


def _performance(meta: BundleMeta, eval_dir: str | Path | None, external_patients: int | None) -> list[str]:
    if eval_dir is None:
        return ["Not given at export (pass `--eval EVAL` from `vcpred evaluate` to include it)."]
    path = Path(eval_dir) / "summary.csv"
    try:
        summary, evaluation = _read_eval(Path(eval_dir))
    except (OSError, pd.errors.ParserError, json.JSONDecodeError) as exc:
        return [f"EVAL {eval_dir} not readable ({exc})."]
    variant = Variant(meta.configuration, meta.ap).label
    rows = summary[summary["variant"] == variant]
    if rows.empty:
        return [f"EVAL has no variant {variant!r}."]
    small = _small_sample_lines(evaluation) + _transfer_lines(evaluation, variant)
    lines = [*small, *([""] if small else []),
             "| set | AUC mean (SD) | sensitivity | specificity | splits |", "|---|---|---|---|---|"]
    ensemble = evaluation.get("ensembles", {}).get(variant, {})
    for _, row in rows.iterrows():
        auc = _mean_sd(row["auc_mean"], row["auc_sd"])
        if row["set"] == "external" and not finite(row["auc_mean"]):  # every split scores the same external set
            auc = "n/a (no external patients)" if external_patients == 0 else f"n/a ({external_reason(ensemble)})"
        lines.append(f"| {row['set']} | {auc} | "
                     f"{_fmt(row['sensitivity_mean'])} | {_fmt(row['specificity_mean'])} | {row['n_splits']} |")
    lines.append(f"\nSource: {path} (variant {variant!r}); mean (SD) over split models at each split's threshold.\n")
    external = rows[rows["set"] == "external"]
    if external_patients == 0:
        lines.append("- no external patients: the numbers above are the development validation patients' only")
    elif not external.empty:
        lines += _ensemble_lines(external.iloc[0], ensemble)
        if _export_record(meta):
            lines.append("- (these are the split models' own probabilities; the exported model's are recalibrated: "
                         "see Calibration and recalibration)")
    return lines


def _validation(meta: BundleMeta, eval_dir: str | Path | None, external: bool = True) -> list[str]:
    """What validation data chose for this model (and, with EVAL, for the evaluation)."""
    best = rule = step = None
    variant = Variant(meta.configuration, meta.ap).label
    lines = []
    if eval_dir is not None:
        try:
            summary, evaluation = _read_eval(Path(eval_dir))
            best, rule = evaluation.get("best"), (evaluation.get("comparisons") or {}).get("best_rule")
            step = clinical_step(summary)
        except (OSError, pd.errors.ParserError, json.JSONDecodeError, KeyError):
            lines.append("- (EVAL not readable: the evaluation's choices are not listed)")
    uses, others = validation_uses(early_stopping=meta.image, best=best, rule=rule, step=step,
                                   recalibrated=_export_record(meta) is not None, external=external)
    if best is not None and best != variant:
        others.insert(0, f"This model ({variant}) is not the evaluation's best variant; who chose to export it is "
                         "not recorded.")
    return [*(f"- {use}" for use in uses), *lines, "", *others]


def _preprocessing(params: dict | None) -> str:
    if not params:
        return "- preprocessing: none (clinical only)"
    n4 = f"N4 on (shrink {params['n4_shrink']})" if params.get("n4") else "N4 off"
    return (f"- preprocessing: {n4}; ROI margin {params['margin']}; frames: ROI slice +/- {params['k']} "
            f"({2 * params['k'] + 1} frames); normalisation {params['normalize']} after "
            f"{params['percentiles'][0]}-{params['percentiles'][1]} percentile clipping; input "
            f"{params['size']} x {params['size']} px (all parameters in bundle.json)")


def _warning(training_data: dict) -> list[str]:
    """The synthetic-data warning, bold, right under the research notice (nothing otherwise)."""
    return [f"**{warning_sentence()}**", ""] if is_synthetic(training_data) else []


def _export_record(meta: BundleMeta) -> dict | None:
    """The recalibration `vcpred export` fitted (None: none, or one from `vcpred validate`)."""
    record = meta.recalibration or {}
    return record if record.get("fitted_at") == "export" else None


def _calibration_row(label: str, before: dict | None, after: dict | None) -> str:
    def cells(m: dict | None) -> list[str]:
        if not m:
            return ["n/a"] * 3
        return [f"{m['mean_minus_prevalence']:+.3f}" if finite(m.get("mean_minus_prevalence")) else "n/a",
                _fmt(m.get("calibration_slope"), 2), _fmt(m.get("calibration_intercept"), 2)]

    first, second = cells(before), cells(after)
    return f"| {label} | " + " | ".join(f"{a} → {b}" for a, b in zip(first, second)) + " |"


def calibration_sentence(validation: dict | None) -> str | None:
    """bundle.json `validation_calibration` in one sentence (for the report); None when not recorded."""
    if not validation or not validation.get("before"):
        return None
    before, after = validation["before"], validation.get("after")

    def pair(key: str, digits: int, signed: bool = False) -> str:
        def one(m):
            value = m.get(key)
            return (f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}") if finite(value) else "n/a"
        return f"{one(before)} → {one(after)}" if after else one(before)

    where = f"{validation['patients']} development patients, out-of-split"
    how = (f"before → after the export's recalibration, cross-fitted over {validation['folds']} folds" if after
           else f"not recalibrated: {validation['reason']}")
    return (f"Validation calibration of the exported model ({where}; {how}): calibration slope "
            f"{pair('calibration_slope', 2)}, calibration intercept {pair('calibration_intercept', 2)}, mean "
            f"probability − prevalence {pair('mean_minus_prevalence', 3, signed=True)} (ideal 1, 0, 0).")


def _calibration(meta: BundleMeta, external_patients: int | None = None) -> list[str]:
    """The export's recalibration and the calibration before and after it, out of sample, and on which
    patients it was measured (external_patients: the cohort's, None when unknown)."""
    validation = meta.validation_calibration
    if not validation:
        return ["Not recorded (exported by an earlier vcpred, or not by `vcpred export`)."]
    record = _export_record(meta)
    if record:
        lines = [f"The probabilities are recalibrated: probability = expit({record['intercept']:.4f} + "
                 f"{record['slope']:.4f} × logit(p)), p = the split models' ensemble probability, fitted by maximum "
                 f"likelihood on the out-of-split probabilities of {validation['patients']} development patients "
                 f"({validation['events']} events). The thresholds are mapped through the same function "
                 f"({record['threshold_before']:.4f} → {meta.threshold:.4f}), so the same patients are called high "
                 "risk and every AUC is unchanged."]
    else:
        lines = [f"Not recalibrated: {validation['reason']}. The probabilities are the split models' own."]
    lines += ["", "| patients | mean probability − prevalence | calibration slope | calibration intercept |",
              "|---|---|---|---|",
              _calibration_row(f"development, out-of-split ({validation['patients']})", validation.get("before"),
                               validation.get("after"))]
    external = validation.get("external")
    if external:
        lines.append(_calibration_row(f"external ({external['before']['n']})", external["before"],
                                      external.get("after")))
    if external:
        where = ("External patients: the split ensemble, recalibrated with the fit on all development patients; "
                 "the external set fits and chooses nothing.")
    elif external_patients == 0:
        where = ("External patients: none in the cohort, so this calibration was measured on the development "
                 "patients' out-of-split probabilities only.")
    else:
        where = ("External patients: too few labelled (at least 2 cases and 2 controls needed), so this calibration "
                 "was measured on the development patients' out-of-split probabilities only.")
    lines += ["", "Before → after the recalibration (after: n/a when there is none); ideal: 0, 1, 0. Development "
              f"patients: {validation['source']}; the recalibrated column is measured by {validation['cross_fitting']}"
              f". {where}"]
    return lines + _calibration_warnings(validation)


def _calibration_warnings(validation: dict) -> list[str]:
    """The small-sample rule on the patients the calibration table was measured on."""
    sizes = [SampleSize(f"the out-of-split set of {validation['patients']} development patients",
                        int(validation["events"]), int(validation["patients"]) - int(validation["events"]))]
    external = (validation.get("external") or {}).get("before")
    if external:
        sizes.append(SampleSize("the external set", int(external["events"]), int(external["n"]) - int(external["events"])))
    warnings = [size.warning("the calibration measured on them is imprecise") for size in sizes]
    return ["", *(f"**{as_sentence(w)}**" for w in warnings if w)] if any(warnings) else []


def _limits(training_data: dict, recalibrated: bool) -> list[str]:
    synthetic = (["- Trained and evaluated on synthetic data from `vcpred synth`: the numbers above say nothing "
                  "about real patients."] if is_synthetic(training_data) else [])
    return [
        *synthetic,
        "- Trained on the development population above only; other scanners, sequences, sites or fracture ages "
        "may differ.",
        "- The ROI box and slice must be placed like in training (the fractured vertebral body, central slice).",
        "- Heat maps (attention rollout or Grad-CAM) show where the model looked, not why; they are not "
        "segmentations and can highlight artefacts.",
        "- Missing clinical values imputed with training medians reduce reliability.",
        "- The risk category uses a threshold chosen on development validation data; its sensitivity and "
        "specificity in a new population are unknown until validated there.",
        ("- The recalibration was fitted on development patients: in a new population the probabilities may be "
         "miscalibrated again; check them there (`vcpred validate`) before using them at face value." if recalibrated
         else "- The probabilities were not recalibrated; recalibrate before using them at face value in a new "
              "population (`vcpred validate --recalibrate`).")]


def model_card(meta: BundleMeta, sources, eval_dir: str | Path | None) -> str:
    """The markdown text of MODEL_CARD.md."""
    thresholds = ", ".join("n/a (infinite)" if e.threshold is None else f"{e.threshold:.4f}" for e in meta.splits)
    spec = meta.spec or {}
    merged = ", LoRA merged into the weights" if spec.get("method") == "lora" else ""
    model = (f"{spec.get('backbone')} ({spec.get('weights')} weights, {spec.get('method')} fine-tuning{merged})"
             if spec else "clinical-only logistic regression")
    training_data = recorded({"training_data": meta.training_data})
    training, external, external_patients = _populations(sources, training_data)
    loss = loss_text([recorded_loss(s.path) for s in sources], image=meta.image)
    if _export_record(meta):
        loss += " in training; the export recalibrates the probabilities (see Calibration and recalibration)"
    parts = [
        f"# Model card: {meta.model_id}", "", f"**{RESEARCH_NOTICE}**", "", *_warning(training_data),
        "## Intended use",
        "Research on predicting vertebral collapse after an acute osteoporotic vertebral compression fracture "
        "from a sagittal spine MRI (ROI around the fractured vertebral body) and clinical values. Intended users: "
        "researchers, and clinicians taking part in research. Not for diagnosis or treatment decisions; outputs "
        "must be reviewed by a qualified clinician.", "",
        "## Model",
        f"- configuration: {meta.configuration}; {model}",
        f"- clinical inputs: {', '.join(meta.clinical_columns) or 'none'}",
        f"- training loss and calibration: {loss}",
        f"- augmented prediction (AP) over frames: {meta.ap} (aggregate: {meta.aggregate})",
        f"- ensemble: mean probability over {len(meta.splits)} split models; spread = SD and min-max over models",
        f"- risk threshold: {meta.threshold:.4f} = {meta.threshold_rule}; per split: {thresholds}",
        _preprocessing(meta.prepare_params),
        "", "## Training population", *training, "",
        "## External evaluation population", *external, "",
        "## What validation data was used for", *_validation(meta, eval_dir, external_patients != 0), "",
        "## Performance", *_performance(meta, eval_dir, external_patients), "",
        "## Calibration and recalibration", *_calibration(meta, external_patients), "",
        "## Known limits", *_limits(training_data, bool(meta.recalibration)), "",
    ]
    return "\n".join(parts)
