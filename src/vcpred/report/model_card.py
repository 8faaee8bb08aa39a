"""The chosen configuration's MODEL_CARD.md (written by `vcpred export`), rendered."""

from __future__ import annotations

from vcpred.bundle.card import calibration_sentence
from vcpred.bundle.files import CARD_FILE
from vcpred.html import Html, note, section, tag
from vcpred.report.inputs import ReportInputs
from vcpred.report.markdown import markdown_html


def card_section(inputs: ReportInputs) -> Html:
    if inputs.model_dir is None:
        return section("card", "Model card", note(
            f"No exported model given. The card of {inputs.chosen} is written by `vcpred export RUNS "
            "--configuration NAME --eval EVAL --out MODEL_DIR`; pass --model MODEL_DIR to include it here."))
    path = inputs.model_dir / CARD_FILE
    if not path.is_file():
        return section("card", "Model card", note(f"{path} is missing: export the model again."))
    calibration = calibration_sentence(inputs.bundle.validation_calibration if inputs.bundle else None)
    return section("card", "Model card", *([note(calibration)] if calibration else []), note(f"Rendered from {path}."),
                   tag("div", markdown_html(path.read_text(), heading_offset=2), cls="card"))
