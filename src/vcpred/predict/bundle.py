"""An exported model directory ("bundle") loaded for prediction: the split networks rebuilt from
their safetensors, in the precision asked for. The directory's layout and bundle.json are
described (and checked, without torch) in vcpred.bundle.files."""

from __future__ import annotations

import copy
import json
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file

from vcpred.bundle.files import (
    BUNDLE_FILE, CLINICAL_FILE, SPEC_FILE, WEIGHTS_FILE, BundleError, BundleMeta, SplitEntry, checked_meta, parse_meta,
)
from vcpred.cohort.provenance import recorded as recorded_training_data
from vcpred.models import ClinicalLogistic, ClinicalPreprocessor, ModelSpec, VcpredModel, create_model
from vcpred.models.precision import choose, to_bf16_weights


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
    """meta: bundle.json typed, raw: as read (what a recalibrated copy starts from); precision: the
    one the networks were loaded for (fp32 | bf16), with why it was chosen."""

    path: Path
    meta: BundleMeta
    raw: dict
    models: list[SplitModel]
    precision: str = "fp32"
    precision_reason: str = "asked for"

    @property
    def threshold(self) -> float:
        return self.meta.threshold

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def clinical_columns(self) -> list[str]:
        return list(self.meta.clinical_columns)

    @property
    def clinical_ranges(self) -> dict:
        """Training min/max per numeric clinical column ({} in bundles exported before they were recorded)."""
        return dict(self.meta.clinical_ranges)

    @property
    def training_data(self) -> dict:
        """{synthetic, evidence} of the data the split models were trained on (bundle.json)."""
        return recorded_training_data({"training_data": self.meta.training_data})

    @property
    def synthetic(self) -> bool:
        return bool(self.training_data["synthetic"])

    def prepare_params(self):
        from vcpred.imaging import PrepareParams  # SimpleITK only when images are prepared

        return PrepareParams.from_dict(self.meta.prepare_params)


Architectures = dict[tuple[str, int], VcpredModel]  # (spec less its seed, clinical width) -> meta network


def build_network(spec: dict, clinical_features: int, state: dict[str, torch.Tensor], *,
                  made: Architectures | None = None) -> VcpredModel:
    """The plain VcpredModel of spec with the exported state; no pre-trained weights are needed.

    The architecture is built on the meta device (no memory, no random initialisation: a ViT-B
    takes ~2 s to initialise on a CPU) with method 'full' (no peft wrapper), then every tensor is
    assigned from the bundle (strict: any missing or extra tensor is an error). Should a module
    keep a tensor that is not in the state (a non-persistent buffer), it is built normally instead.
    made: empty architectures already built by this load, by spec; a split model whose spec differs
    only in its seed copies one (0.015 s for a ViT-B) instead of building it again (0.07 s).
    """
    model_spec = replace(ModelSpec.from_dict(spec), weights="random", method="full")
    net = _empty_network(model_spec, clinical_features, {} if made is None else made)
    _assign(net, state, model_spec.backbone)
    if any(t.is_meta for t in [*net.parameters(), *net.buffers()]):
        net = create_model(model_spec, clinical_features=clinical_features).net
        _assign(net, state, model_spec.backbone)
    return net.eval().requires_grad_(False)


def _empty_network(model_spec: ModelSpec, clinical_features: int, made: Architectures) -> VcpredModel:
    """The architecture on the meta device: a copy of the one in `made` (the seed changes no shape)."""
    key = (json.dumps(replace(model_spec, seed=0).to_dict(), sort_keys=True), clinical_features)
    if key not in made:
        with torch.device("meta"):
            made[key] = create_model(model_spec, clinical_features=clinical_features).net
    return copy.deepcopy(made[key])


def _assign(net: nn.Module, state: dict[str, torch.Tensor], backbone: str) -> None:
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise BundleError(f"exported weights do not fit the {backbone} architecture: {exc}") from None


def load_split(folder: Path, entry: SplitEntry, kind: str, shared: dict[str, torch.Tensor], *,
               made: Architectures | None = None) -> SplitModel:
    """One split's models; shared: the bundle's backbone tensors when they are kept once (version 2);
    made: build_network's architectures of the splits loaded before."""
    split_dir = folder / entry.dir
    preprocessor = logistic = net = None
    if (split_dir / CLINICAL_FILE).is_file():
        clinical = json.loads((split_dir / CLINICAL_FILE).read_text())
        preprocessor = ClinicalPreprocessor.from_dict(clinical["preprocessor"])
        if "logistic" in clinical:
            logistic = ClinicalLogistic(**clinical["logistic"])
    if kind == "image":
        spec = json.loads((split_dir / SPEC_FILE).read_text())
        state = {**shared, **load_file(str(split_dir / WEIGHTS_FILE))}
        net = build_network(spec["spec"], spec["clinical_features"], state, made=made)
    return SplitModel(entry.split, entry.threshold, net, preprocessor, logistic)


def load_bundle(folder: str | Path, *, verify: bool = True, precision: str = "fp32",
                checked: Future | None = None) -> Bundle:
    """Read and check an exported model directory (hashes of every file when verify), with its
    networks ready for `precision` (fp32 | bf16 | auto: vcpred.models.precision.choose).
    checked: vcpred.bundle.files.check_in_background(folder), when the check was started earlier."""
    folder = Path(folder)
    raw = checked.result() if checked is not None else checked_meta(folder, verify=verify)
    meta = parse_meta(raw, folder / BUNDLE_FILE)
    if not meta.splits:
        raise BundleError(f"{folder / BUNDLE_FILE} lists no split models; export the model again")
    check = recalibrated_check(meta.bf16_check, meta.recalibration)
    chosen, reason = choose(precision, check) if meta.image else ("fp32", "no network")
    shared = load_file(str(folder / meta.shared_backbone)) if meta.shared_backbone else {}
    made: Architectures = {}
    models = [load_split(folder, entry, meta.kind, shared, made=made) for entry in meta.splits]
    _check_input_size(folder, meta, models)
    share_identical_backbones(models)
    if chosen == "bf16":  # after sharing: a shared backbone is converted once
        for split_model in models:
            to_bf16_weights(split_model.net)
    return Bundle(folder, meta, raw, models, chosen, reason)


def recalibrated_check(check: dict | None, recalibration: dict | None) -> dict | None:
    """The bf16 check as `--precision auto` must read it in a recalibrated bundle: the recorded change
    of the split models' probabilities times the steepest slope of the recalibration map
    expit(a + b logit p) over p (a bound on how far it moves the probability reported; a slope b > 1
    spreads probabilities apart, and with them bf16's rounding)."""
    if not check or not recalibration or not isinstance(check.get("max_probability_change"), (int, float)):
        return check
    import numpy as np
    from scipy.special import expit

    a, b = float(recalibration["intercept"]), float(recalibration["slope"])
    lp = np.linspace(-14, 14, 20001)  # logit of [1e-6, 1 - 1e-6], the clip before the logit
    p, q = expit(lp), expit(a + b * lp)
    gain = float(np.max(b * q * (1 - q) / (p * (1 - p))))
    return {**check, "max_probability_change": check["max_probability_change"] * gain, "recalibration_gain": gain}


def share_identical_backbones(models: list[SplitModel]) -> None:
    """Split models whose backbones hold the same tensors (a linear probe: one frozen pre-trained
    backbone, a head per split) get one backbone module, so prediction computes it once per frame;
    only where their input standardisation (fitted per split: vcpred.models.standardize) is the same."""
    nets = [m.net for m in models if m.net is not None]
    for net in nets[1:]:
        if _same_tensors(nets[0].backbone, net.backbone) and _same_standardization(nets[0], net):
            net.backbone = nets[0].backbone


def _same_standardization(a: VcpredModel, b: VcpredModel) -> bool:
    first, second = getattr(a, "standardizer", None), getattr(b, "standardizer", None)
    return first is None and second is None or (
        first is not None and second is not None and _same_tensors(first, second))


def _same_tensors(a: nn.Module, b: nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(_equal(first[k], second[k]) for k in first)


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.data_ptr() == b.data_ptr() or torch.equal(a, b)  # one storage (backbone.safetensors): equal


def _check_input_size(folder: Path, meta: BundleMeta, models: list[SplitModel]) -> None:
    """A ViT takes one input size: the bundle's preprocessing must produce it."""
    if not meta.image or meta.family != "vit" or meta.prepare_params is None:
        return
    from vcpred.explain.rollout import find_vit

    expected = tuple(find_vit(models[0].net).patch_embed.img_size)
    size = meta.prepare_params["size"]
    if expected != (size, size):
        raise BundleError(f"{folder / BUNDLE_FILE}: preprocessing makes {size} px frames but the model takes "
                          f"{expected[0]}x{expected[1]}; export the model again from its runs")
