"""Writing EVAL/: summary.csv, per_split.csv, sites.csv, ensemble_predictions.csv, evaluation.json, tables.md,
figures/, and last sha256.json: the sha256 of every other file, which the report checks (evaluation_problems)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from vcpred import __version__
from vcpred.evaluate.calibration import calibration_json
from vcpred.evaluate.compare import Comparison
from vcpred.evaluate.core import Evaluation
from vcpred.evaluate.decision import decision_json
from vcpred.evaluate.sites import sites_table
from vcpred.evaluate.small_sample import MIN_PER_CLASS
from vcpred.evaluate.tables import tables_markdown
from vcpred.evaluate.transfer import flag_text, for_variant
from vcpred.hashing import sha256_files
from vcpred.jsonio import ABSENT, json_text, jsonable, to_dict
from vcpred.output_folder import MARKER
from vcpred.runs import output_problems

GENERATOR = "vcpred evaluate"
SETS = {"internal": "validation", "external": "external"}
HASHES = "sha256.json"  # {generator, version, outputs: {file: sha256}}, like a run's config.yaml `outputs`
WRITTEN = "`vcpred evaluate` wrote it"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def summary_table(ev: Evaluation) -> pd.DataFrame:
    """One row per variant x set (internal, external): mean (SD) over splits, p-values vs best."""
    rows = []
    for variant in ev.variants:
        mine = ev.per_split[ev.per_split["variant"] == variant.label]
        for set_name, prefix in SETS.items():
            row = {"configuration": variant.configuration, "ap": _bool(variant.ap),
                   "clinical": _bool(variant.clinical), "variant": variant.label, "set": set_name,
                   "best": _bool(variant == ev.best), "n_splits": int(mine[f"{prefix}_auc"].notna().sum()),
                   "small_sample": _bool(bool((ev.small_sample.get(set_name) or {}).get("small")))}
            for metric in ("auc", "sensitivity", "specificity"):
                values = mine[f"{prefix}_{metric}"]
                row[f"{metric}_mean"] = values.mean()
                row[f"{metric}_sd"] = values.std(ddof=1) if values.notna().sum() > 1 else math.nan
            row.update(_p_columns(ev.comparisons.of(variant.label), set_name, ev.comparisons.alpha))
            if set_name == "external" and variant in ev.ensembles:
                metrics = ev.ensembles[variant].metrics
                row.update({f"ensemble_{k}": metrics[k] for k in
                            ("auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "brier")})
                row["ensemble_threshold"] = ev.ensembles[variant].threshold
                row["ensemble_threshold_note"] = ev.ensembles[variant].threshold_note
                checked = for_variant(ev.transfer, variant.label)  # transfer.py: reporting only
                row["transfer_drop"] = checked.drop if checked is not None else math.nan
                row["transfer_flag"] = flag_text(checked)
            rows.append(row)
    return pd.DataFrame(rows)


def _p_columns(comparison: Comparison | None, set_name: str, alpha: float) -> dict:
    """p vs best; `significant` = Holm-adjusted p < alpha."""
    if comparison is None:  # the best variant itself
        return {"p_value": math.nan, "p_test": "", "p_bonferroni": math.nan, "p_holm": math.nan,
                "significant": ""}
    part = comparison.internal if set_name == "internal" else comparison.external
    primary, split_tests = part.primary, part.per_split_delong
    return {"p_value": primary.p_value, "p_test": primary.test, "p_bonferroni": primary.p_bonferroni,
            "p_holm": primary.p_holm,
            "significant": "" if math.isnan(primary.p_holm) else _bool(primary.p_holm < alpha),
            "p_split_delong_median": math.nan if split_tests.median_p is ABSENT else split_tests.median_p,
            "n_splits_significant": split_tests.n_significant,
            "p_over_splits_t": part.over_splits.t_test_p,
            "p_over_splits_wilcoxon": part.over_splits.wilcoxon_p}


def per_split_table(ev: Evaluation) -> pd.DataFrame:
    table = ev.per_split.copy()
    for column in ("ap", "clinical"):
        table[column] = table[column].map(_bool)
    return table


def ensemble_table(ev: Evaluation) -> pd.DataFrame:
    """Every variant's ensemble probability per external patient (unlabelled included)."""
    columns = ["variant", "patient_id", "label", "probability", "threshold", "threshold_note"]
    frames = [e.predictions.assign(variant=v.label, threshold=e.threshold, threshold_note=e.threshold_note)
              .rename_axis("patient_id").reset_index() for v, e in ev.ensembles.items()]
    return pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)


def evaluation_json(ev: Evaluation) -> dict:
    return jsonable({
        "generator": GENERATOR, "version": __version__, "runs": str(ev.runs_dir), "aggregate": ev.aggregate,
        "best": ev.best.label, "skipped_runs": [{"run": p, "reason": r} for p, r in ev.skipped],
        "variants": [{"variant": v.label, "configuration": v.configuration, "ap": v.ap, "clinical": v.clinical}
                     for v in ev.variants],
        "ensembles": {v.label: {"threshold": e.threshold, "threshold_note": e.threshold_note or None, **e.metrics}
                      for v, e in ev.ensembles.items()},
        "selection": to_dict(ev.selection), "sites": {label: to_dict(found) for label, found in ev.sites.items()},
        "comparisons": to_dict(ev.comparisons), "calibration": calibration_json(ev.calibration),
        "decision_curves": decision_json(ev.decision_curves), "subgroups": ev.subgroups,
        "small_sample": ev.small_sample, "transfer": to_dict(ev.transfer) if ev.transfer is not None else None,
        "notes": {"thresholds": "Youden's J on each split's validation predictions; ensembles use the median",
                  "validation": "validation predictions choose each run's best epoch (early stopping), the "
                                "thresholds and the best variant; the external set chooses nothing",
                  "sites": "out-of-split validation AUC per development site: each development patient's mean "
                           "probability over the splits that validated it, joined with its manifest site",
                  "infinite thresholds": "written as null (-inf: every patient positive)",
                  "small sample": f"a set with fewer than {MIN_PER_CLASS} cases or {MIN_PER_CLASS} controls (internal: "
                                  "the smallest split's "
                                  "validation patients; external: the labelled external patients) is flagged in "
                                  "small_sample, summary.csv small_sample, tables.md and the report",
                  "transfer": "per variant, mean internal AUC minus external ensemble AUC; flagged a collapse at the "
                              "external set beyond the margin when the external DeLong upper bound is below the "
                              "internal mean, and below the reference when more than the reference's CI half-width "
                              "below it; reporting only, the external set chooses nothing",
                  "undefined thresholds": "an ensemble whose split models have no finite threshold (constant "
                                          "predictions) has threshold null and says why in threshold_note"}})


def write_outputs(ev: Evaluation, out: Path, *, figures: bool = True) -> list[Path]:
    """Write every output file into out (the evaluate command passes the temporary sibling of
    vcpred.output_folder.replacing, so EVAL changes only when complete); returns the paths written."""
    written = []
    summary = summary_table(ev)
    for name, table in (("summary.csv", summary), ("per_split.csv", per_split_table(ev)),
                        ("sites.csv", sites_table(ev.sites)), ("ensemble_predictions.csv", ensemble_table(ev))):
        table.to_csv(out / name, index=False, float_format="%.10g")
        written.append(out / name)
    (out / "evaluation.json").write_text(json_text(evaluation_json(ev), indent=2))
    (out / "tables.md").write_text(tables_markdown(ev, summary))
    written += [out / "evaluation.json", out / "tables.md"]
    if figures:
        from vcpred.evaluate.figures import write_figures  # matplotlib only when figures are asked for

        written += write_figures(ev, out / "figures")
    return [*written, record_outputs(out)]


def record_outputs(folder: Path) -> Path:
    """Write sha256.json: the sha256 of every file in folder (the output guard's marker aside), taken
    as a run records its outputs, so that what reads EVAL later can tell a file edited or damaged since."""
    names = sorted(name for name in (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
                   if name not in (HASHES, MARKER))
    record = {"generator": GENERATOR, "version": __version__,
              "note": "sha256 of every file vcpred evaluate wrote here: vcpred report refuses a file that differs",
              "outputs": sha256_files(folder, names)}
    (folder / HASHES).write_text(json_text(record, indent=1))
    return folder / HASHES


def evaluation_problems(eval_dir: Path, names: tuple[str, ...]) -> list[str]:
    """What keeps the files `names` of EVAL from being the ones evaluate wrote: sha256.json missing or
    not evaluate's, a name it does not record, a file missing or changed since (runs.output_problems)."""
    path = eval_dir / HASHES
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return [f"{path} is missing (an evaluation by an earlier vcpred, or an incomplete copy)"]
    except (OSError, ValueError) as exc:
        return [f"{path} is not readable JSON ({exc})"]
    if not isinstance(record, dict) or record.get("generator") != GENERATOR or not isinstance(record.get("outputs"), dict):
        return [f"{path} is not the record of the files `vcpred evaluate` wrote"]
    unrecorded = [f"{eval_dir / name} is not recorded in {path}" for name in names if name not in record["outputs"]]
    return unrecorded + (output_problems(eval_dir, record, names, since=WRITTEN) or [])
