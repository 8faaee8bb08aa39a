"""Predict for new patients with an exported model directory: one patient or a whole manifest.

Per split model: the patient's frames -> probabilities [F]; AP combines them (the bundle's
aggregate) or the main frame is used. The ensemble probability is the mean over split models; its
spread is the SD and the min-max over models. The risk category compares the ensemble probability
with the development threshold (median of the split thresholds), by vcpred.predict.risk's one rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vcpred import RESEARCH_NOTICE, console
from vcpred.cohort import PatientRecord
from vcpred.cohort.provenance import SYNTHETIC_WARNING
from vcpred.errors import VcpredError
from vcpred.evaluate.aggregate import combine_probabilities
from vcpred.predict.bundle import Bundle
from vcpred.predict.clinical_input import ClinicalCheck, check_clinical  # noqa: F401 (re-exported)
from vcpred.predict.risk import CATEGORIES, risk_fields  # noqa: F401 (CATEGORIES re-exported)
from vcpred.models.inputs import three_channels
from vcpred.models.precision import inference_context

NOTICE = RESEARCH_NOTICE.rstrip(".").lower()  # "research use only, not a medical device"


def combine_frames(probabilities: np.ndarray, offsets: np.ndarray, *, ap: bool, rule: str) -> float:
    """One probability from per-frame probabilities [F] (AP) or the main frame (offset 0)."""
    if not ap:
        return float(probabilities[offsets == 0][0])
    return combine_probabilities(probabilities, rule)


def summarise(per_model: np.ndarray, threshold: float) -> dict:
    """Ensemble mean, spread and risk (category, borderline, risk: vcpred.predict.risk) from per-model
    probabilities [M]."""
    mean = float(per_model.mean())
    low, high = float(per_model.min()), float(per_model.max())
    return {"probability": mean,
            "sd": float(per_model.std(ddof=1)) if len(per_model) > 1 else 0.0,
            "interval": {"low": low, "high": high, "kind": "min-max over split models"},
            "threshold": threshold, **risk_fields(mean, low, high, threshold)}


class PredictionFailed(VcpredError):
    """The models gave no usable number (NaN or infinite): an error, never a probability."""


def check_finite(result: dict) -> None:
    numbers = [result["probability"], result["sd"], result["interval"]["low"], result["interval"]["high"],
               *(m["probability"] for m in result.get("per_model", []))]
    if not all(np.isfinite(numbers)):
        bad = sum(not np.isfinite(m["probability"]) for m in result.get("per_model", []))
        raise PredictionFailed(f"the prediction failed: {bad or 'the'} split model(s) gave no number (NaN); "
                               "no probability is reported. Check the image (a blank or saturated crop) and the "
                               "ROI, or report it as a bug")


def provenance_fields(bundle: Bundle) -> dict:
    """training_data always; `warning` only when the model was trained on synthetic data."""
    return {"training_data": bundle.training_data, **({"warning": SYNTHETIC_WARNING} if bundle.synthetic else {})}


def base_result(bundle: Bundle) -> dict:
    return {"generator": "vcpred predict", "notice": NOTICE, **provenance_fields(bundle),
            "model_id": bundle.meta.model_id, "configuration": bundle.meta.configuration,
            "ap": bundle.meta.ap, "aggregate": bundle.meta.aggregate, "threshold_rule": bundle.meta.threshold_rule}


def warn_all(patient_id: str, warnings: list[str]) -> None:
    for message in warnings:
        console.warn(f"patient {patient_id!r}: {message}")


@dataclass
class PatientPrediction:
    """result: the JSON-able prediction; heat: [R, C] map on the main slice (NaN outside the crop)
    or None (clinical-only model, or explain=False); prepared: the PreparedPatient (image models)."""

    result: dict
    heat: np.ndarray | None = None
    prepared: object | None = None


def backbone_groups(models: list) -> list[list]:
    """Split models grouped by their backbone module, in bundle order: models that share one
    (vcpred.predict.bundle.share_identical_backbones) are computed together."""
    groups: dict[int, list] = {}
    for split_model in models:
        groups.setdefault(id(split_model.net.backbone), []).append(split_model)
    return list(groups.values())


def _group_pass(group: list, frames: torch.Tensor, clinicals: list, main: int, precision: str, family: str,
                explain: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Probabilities [F] of each model of a group sharing one backbone, and their maps [h, w] on the
    main frame (empty without explain): the backbone runs once for the whole group."""
    from vcpred.explain import grad_cams, record_attention, rollout_from_attentions, vit_layout
    from vcpred.explain.rollout import find_vit

    nets = [m.net for m in group]
    maps: list[np.ndarray] = []
    with torch.no_grad(), inference_context(precision):
        if explain and family == "vit":  # one forward gives both the features and the attention
            vit = find_vit(nets[0])
            with record_attention(vit) as captured:
                features = nets[0].embed(frames)
            heat = rollout_from_attentions([a[main:main + 1] for a in captured], **vit_layout(vit))[0]
            maps = [heat] * len(nets)  # one backbone, one attention: the same map for each head
        else:
            features = nets[0].embed(frames)
        probabilities = [torch.sigmoid(net.classify(features, clinical).float()).numpy()
                         for net, clinical in zip(nets, clinicals)]
    if explain and family == "cnn":
        with inference_context(precision):
            maps = [cam[0] for cam in grad_cams(nets, frames[main:main + 1],
                                                [None if c is None else c[main:main + 1] for c in clinicals])]
    return probabilities, maps


def clinical_rows(split_model, record: PatientRecord, count: int) -> torch.Tensor | None:
    """The record's clinical row repeated for `count` frames, as the split model takes it (None: none)."""
    if split_model.preprocessor is None or split_model.net is None or split_model.net.clinical is None:
        return None
    row = torch.from_numpy(split_model.preprocessor.transform([record]))
    return row.expand(count, -1).contiguous()


def _image_prediction(bundle: Bundle, record: PatientRecord, explain: bool,
                      prepared: Callable[[], object] | None) -> PatientPrediction:
    from vcpred.explain.maps import full_slice_map, method_text
    from vcpred.imaging import prepare_patient

    prepared = prepare_patient(record, bundle.prepare_params()) if prepared is None else prepared()
    frames = torch.from_numpy(three_channels(prepared.frames))
    offsets = np.asarray(prepared.frame_offsets)
    main = int(np.flatnonzero(offsets == 0)[0])
    probabilities: dict[int, np.ndarray] = {}
    maps = []
    for group in backbone_groups(bundle.models):
        clinicals = [clinical_rows(m, record, len(frames)) for m in group]
        group_probabilities, group_maps = _group_pass(group, frames, clinicals, main, bundle.precision,
                                                      bundle.meta.family, explain)
        probabilities.update((id(m), p) for m, p in zip(group, group_probabilities))
        maps.extend(group_maps)
    per_frame = [probabilities[id(m)] for m in bundle.models]
    per_model = [combine_frames(p, offsets, ap=bundle.meta.ap, rule=bundle.meta.aggregate) for p in per_frame]
    per_frame_array = np.stack(per_frame)
    result = {**summarise(np.asarray(per_model), bundle.threshold),
              "per_model": [{"split": m.split, "threshold": m.threshold, "probability": p,
                             "frames": [float(x) for x in f]} for m, p, f in zip(bundle.models, per_model, per_frame)],
              "per_frame": [{"offset": int(o), "slice": int(s), "probability": float(p)} for o, s, p in
                            zip(offsets, prepared.frame_slices, per_frame_array.mean(axis=0))],
              "roi": {"slice": record.roi.slice, "box": list(record.roi.box)},
              "crop_box": [int(v) for v in prepared.crop_box], "provenance": prepared.provenance}
    heat_full = full_slice_map(np.stack(maps), prepared.crop_box, prepared.main_slice.shape) if maps else None
    if maps:
        result["heatmap"] = {"method": method_text(bundle.meta.family), "frame_offset": 0,
                             "averaged_over_models": len(maps)}
        if not np.nanmax(heat_full) > 0:  # Grad-CAM keeps only what raises the logit
            result["heatmap"]["note"] = "the map is zero everywhere: no region of the crop raises the predicted risk"
    return PatientPrediction(result, heat_full, prepared)


def _clinical_only_prediction(bundle: Bundle, record: PatientRecord) -> PatientPrediction:
    per_model = np.array([float(m.logistic.predict_proba(m.preprocessor.transform([record]))[0])
                          for m in bundle.models])
    result = {**summarise(per_model, bundle.threshold),
              "per_model": [{"split": m.split, "threshold": m.threshold, "probability": float(p)}
                            for m, p in zip(bundle.models, per_model)], "per_frame": []}
    return PatientPrediction(result)


def predict_patient(bundle: Bundle, record: PatientRecord, *, explain: bool = True, allow_missing: bool = False,
                    strict_keys: bool = True, prepared: Callable[[], object] | None = None) -> PatientPrediction:
    """Predict one patient (record.clinical holds the given values, as text or typed) in the
    precision the bundle was loaded for. prepared: returns the patient's PreparedPatient (or raises
    why it could not be made), from vcpred.predict.batch.prepared_ahead; None prepares it here."""
    from dataclasses import replace

    check = check_clinical(bundle, record.clinical, allow_missing=allow_missing, strict_keys=strict_keys)
    warn_all(record.patient_id, check.warnings)
    record = replace(record, clinical=check.values)
    if bundle.kind == "clinical_only":
        prediction = _clinical_only_prediction(bundle, record)
    else:
        prediction = _image_prediction(bundle, record, explain, prepared)
    if bundle.meta.recalibration:  # fitted by `vcpred export` or `vcpred validate --recalibrate`
        from vcpred.bundle.recalibration import recalibrate_result

        prediction.result = recalibrate_result(prediction.result, bundle.meta.recalibration)  # risk by the one rule
    check_finite(prediction.result)
    image_warnings = list((prediction.result.get("provenance") or {}).get("warnings", []))
    # level: the vertebral level of the fracture (the manifest's level, --level, the viewer's field) or None
    prediction.result = {**base_result(bundle), "patient_id": record.patient_id, "level": record.level,
                         **prediction.result,
                         "clinical": check.values, "imputed": check.imputed, "clinical_flags": check.flags,
                         "precision": bundle.precision, "precision_reason": bundle.precision_reason,
                         "warnings": check.warnings + image_warnings}
    return prediction
