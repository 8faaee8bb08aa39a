"""An exported model directory ("bundle"): its contract and how it is made from runs.

files.py            the layout and bundle.json (BundleMeta), sha256 checks; no torch
export.py           `vcpred export`: a configuration's split runs -> a model directory
command.py          the `vcpred export` command line
card.py, method.py  MODEL_CARD.md, and the wording of what the runs did (also used by the report)
precision_check.py  how far bf16 moves the validation probabilities (bundle.json bf16_check)

Loading a bundle's networks for prediction is vcpred.predict.bundle. See docs/predict.md.
"""

from vcpred.lazy import lazy_exports

# name -> defining submodule, imported on first use: reading bundle.json must not load torch
_EXPORTS = {
    "BundleError": "files",
    "BundleMeta": "files",
    "export_configuration": "export",
    "parse_meta": "files",
    "read_meta": "files",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
