"""MODEL_CARD.md for an exported model: intended use, notice, population, performance, limits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vcpred import RESEARCH_NOTICE


def _population(sources) -> list[str]:
    """Counts from the manifest the runs were trained on (when it is still readable)."""
    from vcpred.cohort import load_manifest
    from vcpred.errors import VcpredError

    manifest = sources[0].config["config"]["manifest"]
    try:
        cohort = load_manifest(manifest)
    except (VcpredError, OSError) as exc:
        return [f"- training manifest {manifest} not readable at export time ({exc})"]
    lines = []
    for set_name in ("development", "external"):
        records = cohort.subset(set_name)
        events = sum(1 for r in records if r.label == 1)
        labelled = sum(1 for r in records if r.label is not None)
        lines.append(f"- {set_name}: {len(records)} patients, {events} with collapse among {labelled} labelled")
    sites = sorted({r.site for r in cohort.records if r.site})
    if sites:
        lines.append(f"- sites: {', '.join(sites)}")
    lines.append(f"- {len(sources)} split models, each trained on a patient-level split of the development set "
                 "(train/validation); external patients never used for training or thresholds")
    return lines


def _performance(meta: dict, eval_dir: str | Path | None) -> list[str]:
    if eval_dir is None:
        return ["Not given at export (pass `--eval EVAL` from `vcpred evaluate` to include it)."]
    path = Path(eval_dir) / "summary.csv"
    try:
        summary = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as exc:
        return [f"EVAL {path} not readable ({exc})."]
    variant = meta["configuration"] + (" + AP" if meta["ap"] else "")
    rows = summary[summary["variant"] == variant]
    if rows.empty:
        return [f"EVAL has no variant {variant!r}."]
    lines = ["| set | AUC mean (SD) | sensitivity | specificity | splits |", "|---|---|---|---|---|"]
    for _, row in rows.iterrows():
        lines.append(f"| {row['set']} | {row['auc_mean']:.3f} ({row['auc_sd']:.3f}) | {row['sensitivity_mean']:.3f} | "
                     f"{row['specificity_mean']:.3f} | {row['n_splits']} |")
    lines.append(f"\nSource: {path} (variant {variant!r}); mean (SD) over split models at each split's threshold.")
    return lines


def model_card(meta: dict, sources, eval_dir: str | Path | None) -> str:
    """The markdown text of MODEL_CARD.md."""
    thresholds = ", ".join("n/a" if e["threshold"] is None else f"{e['threshold']:.4f}" for e in meta["splits"])
    spec = meta.get("spec") or {}
    model = (f"{spec.get('backbone')} ({spec.get('weights')} weights, {spec.get('method')} fine-tuning, LoRA "
             "merged into the weights)" if spec else "clinical-only logistic regression")
    parts = [
        f"# Model card: {meta['model_id']}", "", f"**{RESEARCH_NOTICE}**", "",
        "## Intended use",
        "Research on predicting vertebral collapse after an acute osteoporotic vertebral compression fracture "
        "from a sagittal spine MRI (ROI around the fractured vertebral body) and clinical values. Not for "
        "diagnosis or treatment decisions; outputs must be reviewed by a qualified clinician.", "",
        "## Model",
        f"- configuration: {meta['configuration']}; {model}",
        f"- clinical inputs: {', '.join(meta['clinical_columns']) or 'none'}",
        f"- augmented prediction (AP) over frames: {meta['ap']} (aggregate: {meta['aggregate']})",
        f"- ensemble: mean probability over {len(meta['splits'])} split models; spread = SD and min-max over models",
        f"- risk threshold: {meta['threshold']:.4f} = {meta['threshold_rule']}; per split: {thresholds}",
        (f"- preprocessing: {meta['prepare_params']}" if meta.get("prepare_params")
         else "- preprocessing: none (clinical only)"),
        "", "## Training population", *_population(sources), "",
        "## Performance", *_performance(meta, eval_dir), "",
        "## Known limits",
        "- Trained on the population above only; other scanners, sequences, sites or fracture ages may differ.",
        "- The ROI box and slice must be placed like in training (the fractured vertebral body, central slice).",
        "- Heat maps (attention rollout or Grad-CAM) show where the model looked, not why; they are not "
        "segmentations and can highlight artefacts.",
        "- Missing clinical values imputed with training medians reduce reliability.",
        "- The risk category uses a threshold chosen on development validation data; its sensitivity and "
        "specificity in a new population are unknown until validated there.", "",
    ]
    return "\n".join(parts)
