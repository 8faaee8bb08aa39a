"""Heat-map gallery: external true/false positives/negatives of the chosen ensemble, each predicted
again with the exported model through `vcpred predict`'s own code (predict_patient, heatmap_png),
so the maps are exactly what a user of the model would see."""

from __future__ import annotations

from vcpred import console
from vcpred.errors import VcpredError
from vcpred.report.cases import OUTCOMES, classified, examples
from vcpred.report.html import Html, note, png_image, section, tag
from vcpred.report.inputs import ReportInputs

AGREEMENT = 0.01  # the model directory reproduces the runs' probabilities far closer than this


def _card(bundle, record, expected: float) -> Html:
    from vcpred.predict.outputs import heatmap_png
    from vcpred.predict.predict import predict_patient

    try:
        prediction = predict_patient(bundle, record, allow_missing=True, strict_keys=False)
    except VcpredError as exc:
        return tag("div", tag("p", tag("strong", record.patient_id)), note(f"not predicted: {exc}"), cls="case")
    probability = prediction.result["probability"]
    agreement = "" if abs(probability - expected) <= AGREEMENT else (
        " - differs from the evaluation: the images or preprocessing changed since the runs")
    png = heatmap_png(prediction, None)
    image = png_image(png, f"heat map of {record.patient_id}") if png else note("no heat map (clinical-only model)")
    caption = (f"{record.patient_id}: label {record.label}, P(collapse) {probability:.3f} "
               f"(evaluation ensemble {expected:.3f}{agreement})")
    return tag("figure", image, tag("figcaption", caption), cls="case")


def gallery_cells(inputs: ReportInputs, per_cell: int) -> list[Html]:
    from vcpred.predict import load_bundle

    bundle = load_bundle(inputs.model_dir)
    by_id = {r.patient_id: r for r in inputs.cohort.records}
    cells = []
    chosen = examples(classified(inputs), per_cell)
    for outcome in console.progress(OUTCOMES, desc="gallery"):
        cases = [_card(bundle, by_id[pid], p) for pid, p in zip(chosen[outcome]["patient_id"],
                                                                 chosen[outcome]["probability"]) if pid in by_id]
        cells.append(tag("div", tag("h3", f"{outcome}s ({len(cases)})"), *cases or [note("none")], cls="cell"))
    return cells


def _no_model() -> Html:
    return note("No heat maps: no exported model was given (or --gallery 0). Export the chosen configuration and pass it: "
                "vcpred export RUNS --configuration NAME --eval EVAL --out MODEL_DIR, then "
                "vcpred report EVAL --model MODEL_DIR --out report.html.")


def gallery_section(inputs: ReportInputs) -> Html:
    per_cell = inputs.gallery_per_cell
    if inputs.bundle is None or per_cell == 0:
        return section("gallery", "Heat-map gallery", _no_model())
    method = ("attention rollout (class token, heads averaged)" if inputs.bundle.get("family") == "vit"
              else "Grad-CAM on the last convolutional stage")
    intro = tag("p", f"External patients of {inputs.chosen} at the development threshold "
                     f"{inputs.bundle['threshold']:.3f}: the clearest {per_cell} of each outcome (true positives and "
                     "false positives: highest probabilities; false negatives and true negatives: lowest). Each "
                     f"is predicted again by the exported model {inputs.bundle['model_id']} with the code of "
                     f"`vcpred predict`; map: {method}, averaged over the split models, on the ROI slice (green: "
                     "ROI, dashed: model input). A map shows where the model looked, not why.")
    if inputs.bundle.get("kind") != "image":
        return section("gallery", "Heat-map gallery", intro, note("The chosen model uses clinical values only: "
                                                                  "there is no image to explain."))
    return section("gallery", "Heat-map gallery", intro, tag("div", *gallery_cells(inputs, per_cell), cls="gallery"))
