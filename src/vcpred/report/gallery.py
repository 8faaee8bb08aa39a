"""Heat-map gallery: external true/false positives/negatives of each given model's ensemble (the
chosen one first), each predicted again with the exported model through `vcpred predict`'s own
code (predict_patient, heatmap_png), so the maps are exactly what a user of the model would see;
drawn zoomed on the vertebra (heatmap_png's `context`), the whole slice as a thumbnail."""

from __future__ import annotations

from pathlib import Path

from vcpred import console
from vcpred.errors import VcpredError
from vcpred.report.cases import OUTCOMES, classified, examples
from vcpred.html import Html, note, png_image, section, tag
from vcpred.bundle.files import BundleMeta
from vcpred.report.inputs import ReportInputs, bundle_variant

AGREEMENT = 0.01  # the model directory reproduces the runs' probabilities far closer than this
CONTEXT = 2.0  # each map shows the model's input crop and as much again around it (neighbouring levels)


def method_name(bundle: BundleMeta) -> str:
    from vcpred.explain.maps import method_text

    return method_text(bundle.family)


def _card(bundle, record, expected: float) -> Html:
    from vcpred.predict.outputs import heatmap_png
    from vcpred.predict.predict import predict_patient

    try:
        prediction = predict_patient(bundle, record, allow_missing=True, strict_keys=False)
    except VcpredError as exc:
        return tag("div", tag("p", tag("strong", record.patient_id)), note(f"not predicted: {exc}"), cls="case")
    probability = prediction.result["probability"]
    # a recalibrated model's probability is compared on the split models' own scale, the evaluation's
    own = (prediction.result.get("recalibration") or {}).get("probability_before", probability)
    agreement = "" if abs(own - expected) <= AGREEMENT else (
        " - differs from the evaluation: the images or preprocessing changed since the runs")
    if own != probability:
        agreement = f"; {own:.3f} before recalibration{agreement}"
    png = heatmap_png(prediction, None, context=CONTEXT)
    image = png_image(png, f"heat map of {record.patient_id}") if png else note("no heat map (clinical-only model)")
    level = f", {record.level}" if record.level else ""
    caption = (f"{record.patient_id}{level}: label {record.label}, P(collapse) {probability:.3f} "
               f"(evaluation ensemble {expected:.3f}{agreement})")
    return tag("figure", image, tag("figcaption", caption), cls="case")


def gallery_cells(inputs: ReportInputs, per_cell: int, model_dir: Path | None = None,
                  meta: BundleMeta | None = None) -> list[Html]:
    """One cell per outcome for the model in model_dir (default: the chosen one), its cases picked
    from its own ensemble's predictions at its own development threshold."""
    from vcpred.predict import load_bundle

    model_dir, meta = (inputs.model_dir, inputs.bundle) if model_dir is None else (model_dir, meta)
    bundle = load_bundle(model_dir)
    by_id = {r.patient_id: r for r in inputs.cohort.records}
    cells = []
    chosen = examples(classified(inputs, bundle_variant(meta)), per_cell)
    for outcome in console.progress(OUTCOMES, desc=f"gallery {meta.configuration}"):
        cases = [_card(bundle, by_id[pid], p) for pid, p in zip(chosen[outcome]["patient_id"],
                                                                 chosen[outcome]["probability"]) if pid in by_id]
        cells.append(tag("div", tag("h3", f"{outcome}s ({len(cases)})"), *cases or [note("none")], cls="cell"))
    return cells


def _block(inputs: ReportInputs, per_cell: int, model_dir: Path, meta: BundleMeta, first: bool) -> Html:
    variant = bundle_variant(meta)
    role = "chosen model" if first else "for comparison"
    heading = tag("h3", f"{variant} - {method_name(meta).split(' (')[0]} ({role})", cls="model")
    if not meta.image:
        return tag("div", heading, note(f"{variant} uses clinical values only: there is no image to explain."),
                   cls="block")
    line = tag("p", f"Exported model {meta.model_id} ({model_dir}); development threshold "
                    f"{meta.threshold:.3f}; map: {method_name(meta)}.", cls="note")
    return tag("div", heading, line, tag("div", *gallery_cells(inputs, per_cell, model_dir, meta), cls="gallery"),
               cls="block")


def _no_model() -> Html:
    return note("No heat maps: no exported model was given (or --gallery 0). Export the chosen configuration and pass it: "
                "vcpred export RUNS --configuration NAME --eval EVAL --out MODEL_DIR, then "
                "vcpred report EVAL --model MODEL_DIR --out report.html.")


def gallery_section(inputs: ReportInputs) -> Html:
    per_cell = inputs.gallery_per_cell
    if inputs.bundle is None or per_cell == 0:
        return section("gallery", "Heat-map gallery", _no_model())
    models = inputs.models
    names = ", ".join(bundle_variant(meta) for _, meta in models)
    intro = tag("p", f"External patients of {names}, each at its own development threshold and picked from its "
                     f"own ensemble's predictions: the clearest {per_cell} of each outcome (true positives and false "
                     "positives: highest probabilities; false negatives and true negatives: lowest), laid out as a "
                     "confusion matrix (predicted positive above, predicted negative below; collapse on the left, no "
                     "collapse on the right). Each is predicted again by the exported model with the code of "
                     "`vcpred predict`; the map is averaged over the split models and shown on the ROI slice, zoomed "
                     f"on the vertebra: the region shown is {CONTEXT:g} times the side of the model's input crop "
                     "(dashed white; green: ROI), the thumbnail shows the whole slice with that region in yellow. "
                     "Colours are stretched from each map's minimum to its maximum. A map shows where the model "
                     "looked, not why.")
    blocks = [_block(inputs, per_cell, model_dir, meta, index == 0) for index, (model_dir, meta) in enumerate(models)]
    return section("gallery", "Heat-map gallery", intro, *blocks)
