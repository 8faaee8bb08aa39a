"""Preprocessing record (from the prepared store's index and the exported model) and the
configurations compared (from each configuration's config.yaml)."""

from __future__ import annotations

from vcpred.report.html import Html, definition_table, note, section, table, tag
from vcpred.report.inputs import ReportInputs


def _n4(params: dict) -> str:
    if not params.get("n4", True):
        return "off"
    return (f"on: SimpleITK N4 on the 3-D series, Otsu mask, shrink factor {params.get('n4_shrink')}, iterations "
            f"{params.get('n4_iterations')}, convergence {params.get('n4_convergence')}, at most "
            f"{params.get('n4_max_fit_voxels')} voxels in the fit")


def _frames(params: dict) -> str:
    k = int(params.get("k", 2))
    return (f"k = {k}: the ROI slice and {k} adjacent slices on each side ({2 * k + 1} frames); "
            f"slices past the volume: {params.get('edge')}")


def preprocessing_pairs(params: dict) -> list[tuple[str, str]]:
    """Readable rows of a PrepareParams dict (vcpred.imaging.PrepareParams.to_dict)."""
    low, high = params.get("percentiles") or ("?", "?")
    return [("N4 bias-field correction", _n4(params)),
            ("ROI margin", f"{params.get('margin')} of the box size on each side, then made square"),
            ("frames (augmented prediction)", _frames(params)),
            ("normalisation", f"{params.get('normalize')} after clipping to the {low}-{high} percentiles of the ROI"),
            ("input size", f"{params.get('size')} x {params.get('size')} px"),
            ("sequences / channels", f"{params.get('sequences') or 'first image of each patient'}; "
                                     f"channel recipe {params.get('channels')}"),
            ("stored as", str(params.get("dtype")))]


def _sources(inputs: ReportInputs) -> Html:
    store, bundle = inputs.store_params, (inputs.bundle or {}).get("prepare_params")
    parts = [f"prepared store {inputs.store_dir / 'index.json'}" if store else "",
             f"model directory {inputs.model_dir / 'bundle.json'}" if bundle else ""]
    message = "Recorded in " + " and ".join(p for p in parts if p) + "."
    if store and bundle and store != bundle:
        message += " WARNING: the store and the exported model record different parameters."
    return note(message)


def model_text(model: dict) -> tuple[str, str, str]:
    """(backbone, weights, method) of a config.yaml model section, as the study's Table 2 names them."""
    if not model.get("image", True):
        return "none (clinical values only)", "-", "logistic regression"
    return str(model.get("backbone")), str(model.get("weights")), str(model.get("method"))


def configurations_table(inputs: ReportInputs) -> Html:
    rows = []
    for name, config in inputs.configs.items():
        model, training = config["config"]["model"], config["config"].get("training", {})
        weights = config.get("weights") or {}
        parameters = config.get("parameters") or {}
        rows.append([name, *model_text(model), ", ".join(config.get("clinical_columns") or []) or "none",
                     f"{training.get('epochs')} / {training.get('batch_size')} / {training.get('lr')}",
                     f"{training.get('patience')}", str(training.get("augment")),
                     f"{parameters.get('trainable', 'n/a')} of {parameters.get('total', 'n/a')}",
                     str(weights.get("source") or "-")])
    header = ["configuration", "backbone", "weights", "method", "clinical features", "epochs / batch / lr",
              "patience", "augment", "trainable parameters", "weights source"]
    return table(header, rows, caption="Configurations compared (from each configuration's config.yaml)")


def setup_section(inputs: ReportInputs) -> Html:
    params = inputs.store_params or (inputs.bundle or {}).get("prepare_params")
    record = (definition_table(preprocessing_pairs(params)) if params
              else note("No preprocessing record found (prepared store missing and no --model)."))
    images = [c for c in inputs.configs.values() if c["config"]["model"].get("image", True)]
    first = (images or list(inputs.configs.values()))[0]  # an image run records its device and precision
    environment = first.get("environment") or {}
    packages = ", ".join(f"{k} {v}" for k, v in (environment.get("packages") or {}).items())
    return section("preprocessing", "Preprocessing and configurations",
                   tag("h3", "Preprocessing record"), record, _sources(inputs),
                   tag("h3", "Configurations"), configurations_table(inputs),
                   note(f"Environment of the runs: vcpred {environment.get('vcpred')}, python "
                        f"{environment.get('python')}, {packages}; git commit {environment.get('git_commit')}; "
                        f"device {first.get('device')}, precision {first.get('precision')}."))
