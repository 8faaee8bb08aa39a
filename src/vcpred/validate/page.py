"""Figures and the HTML page of `vcpred validate`, drawn with the report's code: the ROC band of
evaluate.figures (split models as a band, the ensemble as a line), its calibration plot and decision
curve, and the report's style (vcpred.report.build.STYLE); the page is made with vcpred.html."""

from __future__ import annotations

import math

import numpy as np

from vcpred import RESEARCH_NOTICE, __version__
from vcpred.cohort.provenance import warning_sentence
from vcpred.evaluate.calibration import VariantCalibration
from vcpred.evaluate.decision import DecisionCurves
from vcpred.evaluate.small_sample import PATIENTS_PER_BIN, as_sentence
from vcpred.evaluate.figures import draw_calibration, draw_decision, draw_roc_band, plt, png_bytes
from vcpred.report.build import STYLE
from vcpred.predict.risk import risk_text
from vcpred.validate.core import imputation_counts
from vcpred.html import Html, bullet_list, definition_table, document, join, note, png_image, section, table, tag

FIGURES = {"roc": "roc.png", "calibration": "calibration.png", "decision": "decision_curve.png"}


def _curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


def _number(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def roc_png(scored, metrics: dict) -> bytes | None:
    """ROC of the ensemble (thick) over the band of its split models; None with fewer than 2 of a class."""
    if metrics.get("auc") is None or not math.isfinite(metrics["auc"]):
        return None
    labels = scored.labels
    split_curves = [_curve(labels, scored.table[c].to_numpy()) for c in scored.split_columns()]
    fig, ax = plt.subplots(figsize=(5, 5))
    title = (f"ROC, validation cohort (n = {metrics['n']}, {metrics['events']} events)\nensemble AUC "
             f"{_number(metrics['auc'])} ({_number(metrics['auc_ci_low'])}-{_number(metrics['auc_ci_high'])})")
    draw_roc_band(ax, split_curves if len(split_curves) > 1 else [], _curve(labels, scored.probabilities), title)
    return png_bytes(fig)


def calibration_png(calibration: dict[str, VariantCalibration]) -> bytes | None:
    """Binned calibration of the model (and of its recalibration, when made); curves with a numeric slope."""
    drawable = {k: v for k, v in calibration.items() if v.has_slope}
    if not drawable:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_calibration(ax, drawable)
    ax.set_title("Calibration, validation cohort")
    return png_bytes(fig)


def decision_png(decision: DecisionCurves | None) -> bytes | None:
    if decision is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    draw_decision(ax, decision)
    ax.set_title("Decision curve, validation cohort")
    return png_bytes(fig)


def figures(scored, metrics: dict, calibration: dict[str, VariantCalibration],
            decision: DecisionCurves | None) -> dict[str, bytes | None]:
    return {"roc": roc_png(scored, metrics), "calibration": calibration_png(calibration),
            "decision": decision_png(decision)}


# --- the page -------------------------------------------------------------------------------------


def _figure(png: bytes | None, alt: str, caption: str, why_not: str) -> Html:
    if png is None:
        return note(f"{alt}: not drawn ({why_not}).")
    return tag("figure", png_image(png, alt), tag("figcaption", caption))


def _value(metrics: dict, reasons: dict, key: str, digits: int = 3) -> str:
    value = metrics.get(key)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return f"n/a ({reasons[key]})" if key in reasons else "n/a"


def _model_rows(record: dict) -> list[tuple]:
    model = record["model"]
    rows = [("model", f"{model['model_id']} ({model['path']})"), ("configuration", model["configuration"]),
            ("augmented prediction", f"yes ({model['aggregate']} over frames)" if model["ap"]
             else "no (main frame)" if model["kind"] == "image" else "no (clinical values only)"),
            ("threshold", f"{_number(model['threshold'], 4)}: {model['threshold_rule']}"),
            ("trained on", model["training_data"]["evidence"])]
    if model.get("recalibration"):
        r = model["recalibration"]
        rows.append(("already recalibrated", f"on {r['cohort']['manifest']} (n {r['cohort']['n']}): intercept "
                                             f"{r['intercept']:.4f}, slope {r['slope']:.4f}"))
    return rows


def _own_patients(overlap: dict) -> str:
    """The cohort row on the model's own patients: how many were left out, or what was checked."""
    if not overlap:
        return "not checked"
    left_out = overlap.get("left_out") or []
    counts = {role: sum(1 for e in left_out if e["role"] == role) for role in ("training", "recalibration")}
    checked = (f"checked against its {overlap['training_patients']} training and validation patients"
               if overlap.get("training_patients_recorded") else "its training patients are not recorded")
    checked += f" and {overlap['recalibration_patients']} recalibration patients" if overlap.get(
        "recalibration_patients") else ""
    if not left_out:
        return f"none ({checked})"
    return (f"{len(left_out)} left out: {counts['training']} it was trained or tuned on, {counts['recalibration']} it "
            f"was recalibrated on ({checked})")


def _imputed(imputed: dict) -> str:
    """How many scored patients had clinical values imputed, and which (metrics.json `imputed`)."""
    if not imputed["patients"]:
        return "none"
    return (f"{imputed['patients']} of {imputed['of']} scored patients ({imputation_counts(imputed)}): missing values imputed with the "
            "training medians, or as the 'missing' category (--allow-missing); their predictions are less reliable")


def _cohort_rows(record: dict) -> list[tuple]:
    cohort, m = record["cohort"], record
    in_manifest = cohort.get("excluded_in_manifest") or 0
    excluded = f"{len(record['excluded'])}" + (f" ({in_manifest} excluded in the manifest)" if in_manifest else "")
    return [("manifest", cohort["manifest"]), ("patients", f"{cohort['set'] or 'all sets'}: {cohort['patients']}"),
            ("the model's own patients", _own_patients(record.get("overlap") or {})),
            ("scored", f"{m['n']} ({m['events']} events, {m['controls']} controls)"),
            ("excluded", excluded), ("imputed clinical values", _imputed(record["imputed"])),
            ("origin", cohort["training_data"]["evidence"])]


def _risks(record: dict) -> Html:
    """Scored patients per risk, worded as `vcpred predict` words it (vcpred.predict.risk)."""
    rows = [[risk_text({"risk": risk}), str(count)] for risk, count in record["risk"].items()]
    return table(["risk at the model's threshold", "patients"], rows, cls="numbers",
                 caption="The scored patients by the risk `vcpred predict` gives each (sensitivity and specificity "
                         "count a borderline patient on the side of the threshold its probability falls)")


def _overlap_notice(record: dict) -> list[Html]:
    """A warning at the top when patients the model has seen were in the cohort (or cannot be recognised)."""
    overlap = record.get("overlap") or {}
    left_out = overlap.get("left_out") or []
    if left_out:
        return [tag("p", f"{len(left_out)} patient(s) of this cohort are the model's own: patients it was trained, "
                         "tuned or recalibrated on (listed under \u201cPatients not scored\u201d). They are left out of "
                         "every number on this page, which would otherwise be optimistic.", cls="notice", id="overlap")]
    if overlap.get("note"):
        return [tag("p", f"Note: {overlap['note']}.", cls="notice", id="overlap")]
    return []


def _same_images_notice(record: dict) -> list[Html]:
    """A warning at the top when patients with another patient's images were left out."""
    left_out = (record.get("same_images") or {}).get("left_out") or []
    if not left_out:
        return []
    named = ", ".join(f"{e['patient_id']} (same images as {e['same_as']})" for e in left_out)
    return [tag("p", f"{len(left_out)} patient(s) of this cohort have the same image files as another patient: "
                     f"{named}. Each is left out (listed under \u201cPatients not scored\u201d), so that no image "
                     "counts twice in the numbers on this page.", cls="notice", id="same-images")]


def _small_sample_notice(record: dict) -> list[Html]:
    """A warning at the top when the scored patients are a small sample (evaluate.small_sample's rule)."""
    warning = (record.get("small_sample") or {}).get("warning")
    return [tag("p", f"Warning: {as_sentence(warning)}", cls="notice", id="small-sample")] if warning else []


def _slope(record: dict) -> str:
    """The calibration slope with its Wald 95 % interval ('n/a (reason)' when not computed)."""
    reasons = record["not_computed"]
    value = _value(record, reasons, "calibration_slope")
    if "calibration_slope" in reasons or "calibration_slope_ci_low" in reasons:
        return value
    return (f"{value} (95 % CI {_number(record.get('calibration_slope_ci_low'), 2)} to "
            f"{_number(record.get('calibration_slope_ci_high'), 2)}, Wald)")


def calibration_caption(record: dict) -> str:
    """What the calibration plot shows: its quantile bins, and for a small sample how little it says."""
    curve = next(iter((record.get("calibration_curve") or {}).values()), None)
    bins = len(curve["curve"]["count"]) if curve else 0
    caption = ("Observed fraction of events (bars: Wilson 95 % interval) against the mean predicted probability, in "
               f"{bins} quantile bins of about {record['n'] // max(bins, 1)} patients (at least "
               f"{PATIENTS_PER_BIN} patients a bin, so at most n / {PATIENTS_PER_BIN} bins)")
    caption += ("; the recalibrated model's curve is apparent (fitted on these patients)." if record.get("recalibration")
                else ".")
    if (record.get("small_sample") or {}).get("small"):
        caption += (f" With {record['n']} patients ({record['events']} events) the curve and the calibration slope are "
                    f"imprecise: slope {_slope(record)}.")
    return caption


def _numbers(record: dict) -> Html:
    m, reasons = record, record["not_computed"]
    auc = (f"{_value(m, reasons, 'auc', 4)} ({_number(m.get('auc_ci_low'), 4)}-{_number(m.get('auc_ci_high'), 4)}, "
           "DeLong 95 % CI)" if "auc" not in reasons else _value(m, reasons, "auc"))
    rows = [["AUC", auc], ["threshold (the model's own)", _number(m["threshold"], 4)],
            ["sensitivity", _value(m, reasons, "sensitivity")], ["specificity", _value(m, reasons, "specificity")],
            ["calibration intercept (calibration-in-the-large)", _value(m, reasons, "calibration_intercept")],
            ["calibration slope", _slope(m)], ["Brier score", _value(m, reasons, "brier")]]
    splits = record.get("split_models") or []
    if splits:
        aucs = [s["auc"] for s in splits]
        rows.append(["split models' AUC", f"{min(aucs):.3f} to {max(aucs):.3f} (median {np.median(aucs):.3f}, "
                                          f"{len(aucs)} models)"])
    return table(["measure", "value"], rows, cls="numbers",
                 caption="The exported model (the mean over its split models) on the validation cohort")


def _recalibration(record: dict) -> Html:
    r = record.get("recalibration")
    if not r:
        return note("Not recalibrated (pass --recalibrate NEW_MODEL_DIR to update the model on this cohort).")
    apparent = r["apparent"]
    warning = (r.get("small_sample") or {}).get("warning")
    return join([
        *([tag("p", f"Warning: {as_sentence(warning)}", cls="notice", id="small-recalibration")] if warning else []),
        definition_table([
            ("new model", f"{r['model_id']} ({r['model']})"),
            ("update", f"p' = expit({r['intercept']:.4f} + {r['slope']:.4f} × logit(p))"),
            ("threshold", f"{r['threshold_before']:.4f} → {r['threshold_after']:.4f} (the same patients are high risk)"),
            ("apparent calibration on this cohort", f"intercept {_number(apparent['calibration_intercept'])}, slope "
                                                    f"{_number(apparent['calibration_slope'])}, Brier "
                                                    f"{_number(apparent['brier'])}")]),
        note("Apparent: measured on the patients the update was fitted on, so calibrated by construction; judge the "
             "recalibrated model on other patients. The AUC is unchanged (the update keeps the ranking).")])


def _excluded(record: dict) -> Html:
    rows = [[e["patient_id"], e["set"], e["reason"]] for e in record["excluded"]]
    if not rows:
        return note("Every patient of the cohort was scored.")
    return table(["patient", "set", "reason"], rows, caption=f"{len(rows)} patient(s) not scored")


def page_html(record: dict, pngs: dict[str, bytes | None]) -> str:
    """The self-contained HTML page of one validation (metrics.json `record`, figure PNG bytes)."""
    reasons = record["not_computed"]
    two = reasons.get("auc", "")
    model = record["model"]
    synthetic = []
    if model["training_data"].get("synthetic"):
        synthetic.append(tag("p", f"{warning_sentence()} The model was trained on a synthetic cohort "
                                  f"({model['training_data']['evidence']}).", cls="notice synthetic", id="synthetic"))
    if record["cohort"]["training_data"].get("synthetic"):
        synthetic.append(tag("p", "The validation cohort is synthetic (vcpred synth): these numbers say nothing about "
                                  "real patients.", cls="notice synthetic"))
    body = [
        tag("p", f"{RESEARCH_NOTICE} This page describes a research validation; it does not support decisions "
                 "about individual patients.", cls="notice", id="notice"),
        *synthetic,
        *_overlap_notice(record),
        *_small_sample_notice(record),
        *_same_images_notice(record),
        tag("h1", f"External validation of {model['model_id']}"),
        tag("p", f"{record['cohort']['manifest']}: {record['n']} patients scored exactly as `vcpred "
                 f"predict` scores them. Made by vcpred {__version__} on {record['date']}.", cls="meta"),
        section("model", "Model", definition_table(_model_rows(record))),
        section("cohort", "Cohort", definition_table(_cohort_rows(record))),
        section("performance", "Discrimination and calibration", _numbers(record), _risks(record),
                tag("div", _figure(pngs.get("roc"), "ROC curve",
                                   "ROC of the model on the validation cohort: the red line is the exported model (the "
                                   "ensemble), the band spans its split models (min to max sensitivity).", two),
                    _figure(pngs.get("calibration"), "calibration plot", calibration_caption(record),
                            reasons.get("calibration_slope", two)), cls="pair")),
        section("decision", "Decision curve",
                _figure(pngs.get("decision"), "decision curve",
                        "Net benefit of acting on the model's probability vs treating all or none.", two)),
        section("recalibration", "Recalibration (model updating)", _recalibration(record)),
        section("excluded", "Patients not scored", _excluded(record)),
        section("methods", "Methods", bullet_list([
            "Each patient is predicted by `vcpred predict`'s code: the model's own preprocessing of the images, "
            "augmented prediction when the model uses it, the mean over split models.",
            "AUC with DeLong's 95 % confidence interval; sensitivity and specificity at the model's own threshold "
            "(a patient is positive when the probability is at least the threshold); calibration intercept "
            "(calibration-in-the-large, slope fixed at 1), calibration slope and Brier score; the same code as "
            "`vcpred evaluate` (docs/evaluation.md).",
            "Patients excluded in the manifest (its exclude column) are not read and are listed above with their "
            "reason; patients whose images or clinical values could not be used (a value the clinical-value policy "
            "refuses, such as an impossible age, leaves out that patient alone) are listed above and left out; "
            "patients without a label are not scored.",
            "Patients the model was trained, tuned or recalibrated on are recognised by their id (up to case and "
            "Unicode form) or by identical image files, whatever the manifest says of them, and left out."])),
        tag("footer", tag("p", RESEARCH_NOTICE, cls="notice")),
    ]
    return document(f"vcpred validate: {model['model_id']}", STYLE, body)
