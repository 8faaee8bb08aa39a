"""MODEL_CARD.md for an exported model: intended use, notice, population, performance (with the
ensemble's DeLong CI and calibration from `vcpred evaluate`), limits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from vcpred import RESEARCH_NOTICE
from vcpred.evaluate.variants import Variant


def _population(sources) -> list[str]:
    """Counts from the manifest the runs were trained on (when it is still readable)."""
    from vcpred.cohort import load_manifest
    from vcpred.cohort.summary import event_counts
    from vcpred.errors import VcpredError

    manifest = sources[0].config["config"]["manifest"]
    try:
        cohort = load_manifest(manifest)
    except (VcpredError, OSError) as exc:
        return [f"- training manifest {manifest} not readable at export time ({exc})"]
    lines = []
    for set_name in ("development", "external"):
        counts = event_counts([r.label for r in cohort.subset(set_name)])
        prevalence = "" if counts.prevalence is None else f" (prevalence {counts.prevalence:.1%})"
        lines.append(f"- {set_name}: {counts.patients} patients, {counts.events} with collapse among "
                     f"{counts.labelled} labelled{prevalence}")
    sites = sorted({r.site for r in cohort.records if r.site})
    if sites:
        lines.append(f"- sites: {', '.join(sites)}")
    lines.append(f"- {len(sources)} split models, each trained on a patient-level split of the development set "
                 "(train/validation); external patients never used for training or thresholds")
    return lines


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _ensemble_lines(row: pd.Series, ensemble: dict) -> list[str]:
    """External performance of the split ensemble (the exported model's own output)."""
    if pd.isna(row.get("ensemble_auc", math.nan)):
        return ["- external ensemble: not scored (no labelled external patients of both classes)"]
    return [
        f"- **external AUC of the ensemble (the exported model): {row['ensemble_auc']:.3f} "
        f"(95 % CI {row['ensemble_auc_ci_low']:.3f}-{row['ensemble_auc_ci_high']:.3f}, DeLong)**, "
        f"{ensemble.get('n', 'n/a')} patients with {ensemble.get('n_cases', 'n/a')} events",
        f"- at the development threshold {row['ensemble_threshold']:.4f}: sensitivity "
        f"{row['ensemble_sensitivity']:.3f}, specificity {row['ensemble_specificity']:.3f}",
        f"- calibration on the external set: slope {_fmt(ensemble.get('calibration_slope'), 2)}, intercept "
        f"(calibration-in-the-large) {_fmt(ensemble.get('calibration_intercept'), 2)}, Brier score "
        f"{_fmt(row.get('ensemble_brier'))} (slope 1 and intercept 0 = perfectly calibrated)"]


def _performance(meta: dict, eval_dir: str | Path | None) -> list[str]:
    if eval_dir is None:
        return ["Not given at export (pass `--eval EVAL` from `vcpred evaluate` to include it)."]
    path = Path(eval_dir) / "summary.csv"
    try:
        summary = pd.read_csv(path)
        ensembles = json.loads((Path(eval_dir) / "evaluation.json").read_text()).get("ensembles", {})
    except (OSError, pd.errors.ParserError, json.JSONDecodeError) as exc:
        return [f"EVAL {eval_dir} not readable ({exc})."]
    variant = Variant(meta["configuration"], bool(meta["ap"])).label
    rows = summary[summary["variant"] == variant]
    if rows.empty:
        return [f"EVAL has no variant {variant!r}."]
    lines = ["| set | AUC mean (SD) | sensitivity | specificity | splits |", "|---|---|---|---|---|"]
    for _, row in rows.iterrows():
        lines.append(f"| {row['set']} | {row['auc_mean']:.3f} ({row['auc_sd']:.3f}) | {row['sensitivity_mean']:.3f} | "
                     f"{row['specificity_mean']:.3f} | {row['n_splits']} |")
    lines.append(f"\nSource: {path} (variant {variant!r}); mean (SD) over split models at each split's threshold.\n")
    external = rows[rows["set"] == "external"]
    if not external.empty:
        lines += _ensemble_lines(external.iloc[0], ensembles.get(variant, {}))
    return lines


def _preprocessing(params: dict | None) -> str:
    if not params:
        return "- preprocessing: none (clinical only)"
    n4 = f"N4 on (shrink {params['n4_shrink']})" if params.get("n4") else "N4 off"
    return (f"- preprocessing: {n4}; ROI margin {params['margin']}; frames: ROI slice +/- {params['k']} "
            f"({2 * params['k'] + 1} frames); normalisation {params['normalize']} after "
            f"{params['percentiles'][0]}-{params['percentiles'][1]} percentile clipping; input "
            f"{params['size']} x {params['size']} px (all parameters in bundle.json)")


def model_card(meta: dict, sources, eval_dir: str | Path | None) -> str:
    """The markdown text of MODEL_CARD.md."""
    thresholds = ", ".join("n/a" if e["threshold"] is None else f"{e['threshold']:.4f}" for e in meta["splits"])
    spec = meta.get("spec") or {}
    merged = ", LoRA merged into the weights" if spec.get("method") == "lora" else ""
    model = (f"{spec.get('backbone')} ({spec.get('weights')} weights, {spec.get('method')} fine-tuning{merged})"
             if spec else "clinical-only logistic regression")
    parts = [
        f"# Model card: {meta['model_id']}", "", f"**{RESEARCH_NOTICE}**", "",
        "## Intended use",
        "Research on predicting vertebral collapse after an acute osteoporotic vertebral compression fracture "
        "from a sagittal spine MRI (ROI around the fractured vertebral body) and clinical values. Intended users: "
        "researchers, and clinicians taking part in research. Not for diagnosis or treatment decisions; outputs "
        "must be reviewed by a qualified clinician.", "",
        "## Model",
        f"- configuration: {meta['configuration']}; {model}",
        f"- clinical inputs: {', '.join(meta['clinical_columns']) or 'none'}",
        f"- augmented prediction (AP) over frames: {meta['ap']} (aggregate: {meta['aggregate']})",
        f"- ensemble: mean probability over {len(meta['splits'])} split models; spread = SD and min-max over models",
        f"- risk threshold: {meta['threshold']:.4f} = {meta['threshold_rule']}; per split: {thresholds}",
        _preprocessing(meta.get("prepare_params")),
        "", "## Training population", *_population(sources), "",
        "## Performance", *_performance(meta, eval_dir), "",
        "## Known limits",
        "- Trained on the population above only; other scanners, sequences, sites or fracture ages may differ.",
        "- The ROI box and slice must be placed like in training (the fractured vertebral body, central slice).",
        "- Heat maps (attention rollout or Grad-CAM) show where the model looked, not why; they are not "
        "segmentations and can highlight artefacts.",
        "- Missing clinical values imputed with training medians reduce reliability.",
        "- The risk category uses a threshold chosen on development validation data; its sensitivity and "
        "specificity in a new population are unknown until validated there.",
        "- Calibration was measured on the external set only; recalibrate before using probabilities at face value "
        "in a new population.", "",
    ]
    return "\n".join(parts)
