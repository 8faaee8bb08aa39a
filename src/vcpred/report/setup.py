"""Preprocessing record (from the prepared store's index and the exported model) and the
configurations compared (from each configuration's config.yaml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vcpred.html import Html, definition_table, note, section, table, tag
from vcpred.report.inputs import ReportInputs
from vcpred.runs import RunRecord

if TYPE_CHECKING:
    from vcpred.models.spec import ModelSpec
    from vcpred.training.config import TrainingParams


MISSING = "not recorded"


def _value(params: dict, key: str):
    """A recorded parameter, or 'not recorded' (never None in a cell)."""
    value = params.get(key)
    return MISSING if value is None else value


def _n4(params: dict) -> str:
    if not params.get("n4", True):
        return "off"
    shrink, iterations, convergence, voxels = (_value(params, k) for k in
                                               ("n4_shrink", "n4_iterations", "n4_convergence", "n4_max_fit_voxels"))
    return (f"on: SimpleITK N4 on the 3-D series, Otsu mask, shrink factor {shrink}, iterations {iterations}, "
            f"convergence {convergence}, at most {voxels} voxels in the fit")


def _frames(params: dict) -> str:
    if params.get("k") is None:
        return MISSING
    k = int(params["k"])
    return (f"k = {k}: the ROI slice and {k} adjacent slices on each side ({2 * k + 1} frames); "
            f"slices past the volume: {_value(params, 'edge')}")


def preprocessing_pairs(params: dict) -> list[tuple[str, str]]:
    """Readable rows of a PrepareParams dict (vcpred.imaging.PrepareParams.to_dict)."""
    percentiles = params.get("percentiles")
    clip = f"clipping to the {percentiles[0]}-{percentiles[1]} percentiles of the ROI" if percentiles else (
        "clipping percentiles not recorded")
    size = _value(params, "size")
    return [("N4 bias-field correction", _n4(params)),
            ("ROI margin", f"{_value(params, 'margin')} of the box size on each side, then made square"),
            ("frames (augmented prediction)", _frames(params)),
            ("normalisation", f"{_value(params, 'normalize')} after {clip}"),
            ("input size", f"{size} x {size} px"),
            ("sequences / channels", f"{params.get('sequences') or 'first image of each patient'}; "
                                     f"channel recipe {_value(params, 'channels')}"),
            ("stored as", str(_value(params, "dtype")))]


def _sources(inputs: ReportInputs) -> Html:
    store, bundle = inputs.store_params, inputs.bundle.prepare_params if inputs.bundle else None
    parts = [f"prepared store {inputs.store_dir / 'index.json'}" if store else "",
             f"model directory {inputs.model_dir / 'bundle.json'}" if bundle else ""]
    message = "Recorded in " + " and ".join(p for p in parts if p) + "."
    if store and bundle and store != bundle:
        message += " WARNING: the store and the exported model record different parameters."
    return note(message)


def model_text(model: ModelSpec) -> tuple[str, str, str]:
    """(backbone, weights, method) of a run's model, as the study's Table 2 names them."""
    if not model.image:
        return "none (clinical values only)", "-", "logistic regression"
    return str(model.backbone), str(model.weights), str(model.method)


LOGISTIC = "n/a (logistic regression)"
FEATURE_CACHE = "n/a (frozen-feature cache)"


def _is_cached_probe(model: ModelSpec, training: TrainingParams) -> bool:
    """A linear probe trained on cached backbone features: they are computed once, in eval mode and
    without augmentation (vcpred.training.features), so augment and BatchNorm change nothing."""
    return model.method == "linear" and training.feature_cache


def _batchnorm(model: ModelSpec, training: TrainingParams) -> str:
    if _is_cached_probe(model, training):
        return FEATURE_CACHE
    if model.backbone.startswith("vit"):  # timm ViTs use LayerNorm only
        return "n/a (no BatchNorm)"
    return training.batchnorm


def _training_cells(run: RunRecord) -> list[str]:
    """epochs / batch / lr / patience, augment, BatchNorm, frames, training precision of an image run."""
    model, training = run.model, run.training
    if not model.image:
        return [LOGISTIC] * 5
    augment = FEATURE_CACHE if _is_cached_probe(model, training) else ("yes" if training.augment else "no")
    acquisition = training.acquisition_augment
    if acquisition is not None:  # MRI acquisition augmentation (TorchIO): views for a cached probe
        views = f", {acquisition.views} views per frame" if _is_cached_probe(model, training) else ""
        augment = f"{augment}; acquisition (TorchIO{views})"
    if model.standardize != "none":
        augment += f"; {model.standardize} standardisation fitted on training patients"
    return [f"{training.epochs} / {training.batch_size} / {training.lr} / {training.patience}", augment,
            _batchnorm(model, training), training.frames, str(run.precision or "not recorded")]


def _parameters(run: RunRecord) -> str:
    if not run.image:
        return LOGISTIC
    parameters = run.parameters
    if not parameters:
        return "not recorded"
    return f"{parameters.get('trainable', 'n/a')} of {parameters.get('total', 'n/a')}"


def configurations_table(inputs: ReportInputs) -> Html:
    rows = []
    for name, run in inputs.configs.items():
        rows.append([name, *model_text(run.model), ", ".join(run.clinical_columns) or "none",
                     *_training_cells(run), _parameters(run), str(run.weights.get("source") or "-")])
    header = ["configuration", "backbone", "weights", "method", "clinical features",
              "epochs / batch / lr / patience", "augment", "BatchNorm", "frames", "training precision",
              "trainable parameters", "weights source"]
    return table(header, rows, caption="Configurations compared (from each configuration's config.yaml; frames: "
                                       "all = every prepared frame is a training sample, main = the ROI slice only)")


def _device(run: RunRecord) -> str:
    """Device and training precision of an image run (clinical-only runs record neither)."""
    if not run.image:
        return "device and training precision: n/a (clinical-only runs)"
    return f"device {_value(run.raw, 'device')}, training precision {_value(run.raw, 'precision')}"


def scoring_note(inputs: ReportInputs) -> str:
    """Which precision every score was computed in (config.yaml scoring_precision of image runs)."""
    images = [run for run in inputs.configs.values() if run.image]
    recorded = sorted({str(run.raw.get("scoring_precision") or "not recorded") for run in images})
    if not images:
        return "Scores: clinical-only logistic regressions only (no reduced precision is used)."
    return (f"Scoring precision of the image runs (validation AUC for early stopping, predictions.csv): "
            f"{', '.join(recorded)}, whatever the training precision.")


def setup_section(inputs: ReportInputs) -> Html:
    # the store's record first; what it lacks, from the exported model's (complete) record
    params = {**((inputs.bundle.prepare_params if inputs.bundle else None) or {}), **(inputs.store_params or {})}
    record = (definition_table(preprocessing_pairs(params)) if params
              else note("No preprocessing record found (prepared store missing and no --model)."))
    images = [run for run in inputs.configs.values() if run.image]
    first = (images or list(inputs.configs.values()))[0]  # an image run records its device and precision
    environment = first.environment
    packages = ", ".join(f"{k} {v}" for k, v in (environment.get("packages") or {}).items())
    return section("preprocessing", "Preprocessing and configurations",
                   tag("h3", "Preprocessing record"), record, _sources(inputs),
                   tag("h3", "Configurations"), configurations_table(inputs),
                   note(f"Environment of the runs: vcpred {_value(environment, 'vcpred')}, python "
                        f"{_value(environment, 'python')}, {packages}; git commit "
                        f"{_value(environment, 'git_commit')}; {_device(first)}. {scoring_note(inputs)}"))
