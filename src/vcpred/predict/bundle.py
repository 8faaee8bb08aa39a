"""An exported model directory ("bundle"): layout, hashes, loading.

MODEL_DIR/
  bundle.json                 what the bundle is (below) and the sha256 of every other file
  MODEL_CARD.md               intended use, notice, training population, performance, limits
  split-KK/model.safetensors  full state of the merged (LoRA folded) VcpredModel; image models
  split-KK/model.json         ModelSpec, clinical width, source run, pre-trained weights record
  split-KK/clinical.json      clinical preprocessing (+ the logistic for clinical-only models)
  .vcpred-output.json         what export wrote (vcpred.output_folder; not hashed, not read by predict)

bundle.json: format, version, model_id, configuration, kind ("image" | "clinical_only"), family
("vit" | "cnn"), ap, aggregate, clinical_columns, clinical_ranges (optional: development min/max
per numeric column), prepare_params (vcpred.imaging.PrepareParams),
splits [{split, dir, threshold, run}], threshold (the median of the split thresholds),
threshold_rule, bf16_check (optional: how far bf16 moved the validation probabilities at export, for
`--precision auto`: vcpred.models.precision), training_data {synthetic, evidence} (from the source runs' config.yaml: synthetic
when any run's manifest came from `vcpred synth`; bundles exported before it was recorded read as
not recorded, not synthetic), files {relative path: sha256}, meta_sha256 (sha256 of bundle.json's own content
without this key, so edited thresholds or parameters are caught too). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file

from vcpred.cohort.provenance import recorded as recorded_training_data
from vcpred.errors import WeightsError
from vcpred.hashing import sha256_files
from vcpred.jsonio import json_text, jsonable
from vcpred.models import ClinicalLogistic, ClinicalPreprocessor, ModelSpec, VcpredModel, create_model
from vcpred.models.precision import choose, to_bf16_weights

BUNDLE_FORMAT = "vcpred-model-bundle"
BUNDLE_VERSION = 1
BUNDLE_FILE, CARD_FILE = "bundle.json", "MODEL_CARD.md"
WEIGHTS_FILE, SPEC_FILE, CLINICAL_FILE = "model.safetensors", "model.json", "clinical.json"


class BundleError(WeightsError):
    """A model directory is incomplete, altered or not a vcpred export."""


def hash_files(root: Path, relative: list[str]) -> dict[str, str]:
    """sha256 per file; two threads (hashlib releases the GIL on large buffers)."""
    return sha256_files(root, relative)


@dataclass
class SplitModel:
    """One split's exported model: the network (None for clinical-only) and its clinical parts."""

    split: int
    threshold: float | None
    net: VcpredModel | None
    preprocessor: ClinicalPreprocessor | None
    logistic: ClinicalLogistic | None


@dataclass
class Bundle:
    """precision: the one the networks were loaded for (fp32 | bf16), with why it was chosen."""

    path: Path
    meta: dict
    models: list[SplitModel]
    precision: str = "fp32"
    precision_reason: str = "asked for"

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def clinical_columns(self) -> list[str]:
        return list(self.meta["clinical_columns"])

    @property
    def clinical_ranges(self) -> dict:
        """Training min/max per numeric clinical column ({} in bundles exported before they were recorded)."""
        return dict(self.meta.get("clinical_ranges") or {})

    @property
    def training_data(self) -> dict:
        """{synthetic, evidence} of the data the split models were trained on (bundle.json)."""
        return recorded_training_data(self.meta)

    @property
    def synthetic(self) -> bool:
        return bool(self.training_data["synthetic"])

    def prepare_params(self):
        from vcpred.imaging import PrepareParams  # SimpleITK only when images are prepared

        return PrepareParams.from_dict(self.meta["prepare_params"])


def read_meta(folder: Path) -> dict:
    path = folder / BUNDLE_FILE
    if not folder.is_dir():
        raise BundleError(f"model directory {folder} does not exist; pass the --out folder of `vcpred export`")
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{folder} has no {BUNDLE_FILE}: not a `vcpred export` model directory, or an "
                          "incomplete copy; export it again or copy the whole folder") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not readable JSON ({exc}); export the model again") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a vcpred model bundle (format {meta.get('format')!r})")
    if meta.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{path} has bundle version {meta.get('version')}; this vcpred reads version "
                          f"{BUNDLE_VERSION}: export the model again with this vcpred")
    return meta


def meta_digest(meta: dict) -> str:
    """sha256 of the canonical JSON of meta without its own digest."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_bundle_json(folder: Path, meta: dict, model_files: dict[str, str]) -> dict:
    """Seal a model directory whose MODEL_CARD.md is written: bundle.json lists every file with its
    sha256 (the card's included) and the digest of its own content, taken over exactly what is
    written (strict JSON); returns that meta. Export and recalibration both end here."""
    meta = jsonable({**meta, "files": {**model_files, **hash_files(folder, [CARD_FILE])}})
    meta["meta_sha256"] = meta_digest(meta)
    (folder / BUNDLE_FILE).write_text(json_text(meta))
    return meta


def verify_files(folder: Path, meta: dict) -> None:
    """Every listed file present with its recorded sha256; BundleError naming the files otherwise."""
    if meta.get("meta_sha256") != meta_digest(meta):
        raise BundleError(f"{folder / BUNDLE_FILE} was edited after export (its meta_sha256 does not match); "
                          "export the model again")
    listed = meta.get("files") or {}
    missing = sorted(r for r in listed if not (folder / r).is_file())
    if missing:
        raise BundleError(f"model directory {folder} is incomplete: missing {', '.join(missing)}; "
                          "copy the whole folder again or re-export")
    actual = hash_files(folder, sorted(listed))
    changed = sorted(r for r, digest in actual.items() if digest != listed[r])
    if changed:
        raise BundleError(f"model directory {folder}: {', '.join(changed)} changed since export (sha256 "
                          "mismatch); the files are corrupt or were edited: copy or export the model again")


def build_network(spec: dict, clinical_features: int, state: dict[str, torch.Tensor]) -> VcpredModel:
    """The plain VcpredModel of spec with the exported state; no pre-trained weights are needed.

    The architecture is built on the meta device (no memory, no random initialisation: a ViT-B
    takes ~2 s to initialise on a CPU) with method 'full' (no peft wrapper), then every tensor is
    assigned from the bundle (strict: any missing or extra tensor is an error). Should a module
    keep a tensor that is not in the state (a non-persistent buffer), it is built normally instead.
    """
    model_spec = replace(ModelSpec.from_dict(spec), weights="random", method="full")
    with torch.device("meta"):
        net = create_model(model_spec, clinical_features=clinical_features).net
    _assign(net, state, model_spec.backbone)
    if any(t.is_meta for t in [*net.parameters(), *net.buffers()]):
        net = create_model(model_spec, clinical_features=clinical_features).net
        _assign(net, state, model_spec.backbone)
    return net.eval().requires_grad_(False)


def _assign(net: nn.Module, state: dict[str, torch.Tensor], backbone: str) -> None:
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise BundleError(f"exported weights do not fit the {backbone} architecture: {exc}") from None


def _load_split(folder: Path, entry: dict, kind: str, precision: str) -> SplitModel:
    split_dir = folder / entry["dir"]
    preprocessor = logistic = net = None
    if (split_dir / CLINICAL_FILE).is_file():
        clinical = json.loads((split_dir / CLINICAL_FILE).read_text())
        preprocessor = ClinicalPreprocessor.from_dict(clinical["preprocessor"])
        if "logistic" in clinical:
            logistic = ClinicalLogistic(**clinical["logistic"])
    if kind == "image":
        spec = json.loads((split_dir / SPEC_FILE).read_text())
        net = build_network(spec["spec"], spec["clinical_features"], load_file(str(split_dir / WEIGHTS_FILE)))
        if precision == "bf16":
            to_bf16_weights(net)
    threshold = entry.get("threshold")
    return SplitModel(int(entry["split"]), None if threshold is None else float(threshold), net, preprocessor,
                      logistic)


def load_bundle(folder: str | Path, *, verify: bool = True, precision: str = "fp32") -> Bundle:
    """Read and check an exported model directory (hashes of every file when verify), with its
    networks ready for `precision` (fp32 | bf16 | auto: vcpred.models.precision.choose)."""
    folder = Path(folder)
    meta = read_meta(folder)
    if verify:
        verify_files(folder, meta)
    if not meta.get("splits"):
        raise BundleError(f"{folder / BUNDLE_FILE} lists no split models; export the model again")
    chosen, reason = choose(precision, meta.get("bf16_check")) if meta["kind"] == "image" else ("fp32", "no network")
    models = [_load_split(folder, entry, meta["kind"], chosen) for entry in meta["splits"]]
    _check_input_size(folder, meta, models)
    share_identical_backbones(models)
    return Bundle(folder, meta, models, chosen, reason)


def share_identical_backbones(models: list[SplitModel]) -> None:
    """Split models whose backbones hold the same tensors (a linear probe: one frozen pre-trained
    backbone, a head per split) get one backbone module, so prediction computes it once per frame."""
    nets = [m.net for m in models if m.net is not None]
    for net in nets[1:]:
        if _same_tensors(nets[0].backbone, net.backbone):
            net.backbone = nets[0].backbone


def _same_tensors(a: nn.Module, b: nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(
        first[k].dtype == second[k].dtype and first[k].shape == second[k].shape and torch.equal(first[k], second[k])
        for k in first)


def _check_input_size(folder: Path, meta: dict, models: list[SplitModel]) -> None:
    """A ViT takes one input size: the bundle's preprocessing must produce it."""
    if meta["kind"] != "image" or meta.get("family") != "vit":
        return
    from vcpred.explain.rollout import find_vit

    expected = tuple(find_vit(models[0].net).patch_embed.img_size)
    size = meta["prepare_params"]["size"]
    if expected != (size, size):
        raise BundleError(f"{folder / BUNDLE_FILE}: preprocessing makes {size} px frames but the model takes "
                          f"{expected[0]}x{expected[1]}; export the model again from its runs")
