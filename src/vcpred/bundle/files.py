"""The files of an exported model directory ("bundle"), without torch: layout, bundle.json,
sha256 checks (loading the networks: vcpred.predict.bundle).

MODEL_DIR/
  bundle.json                 what the bundle is (below) and the sha256 of every other file
  MODEL_CARD.md               intended use, notice, training population, performance, limits
  split-KK/model.safetensors  full state of the merged (LoRA folded) VcpredModel; image models
  split-KK/model.json         ModelSpec, clinical width, source run, pre-trained weights record
  split-KK/clinical.json      clinical preprocessing (+ the logistic for clinical-only models)
  backbone.safetensors        version 2 only: the backbone tensors every split model shares (a linear
                              probe), kept once; each split's model.safetensors then holds the rest
  .vcpred-output.json         what export wrote (vcpred.output_folder; not hashed, not read by predict)

bundle.json: format, version, model_id, configuration, kind ("image" | "clinical_only"), family
("vit" | "cnn"), ap, aggregate, clinical_columns, clinical_ranges (optional: development min/max
per numeric column), prepare_params (vcpred.imaging.PrepareParams),
splits [{split, dir, threshold, run}], threshold (the median of the split thresholds),
threshold_rule, shared_backbone (version 2: "backbone.safetensors"), bf16_check (optional: how far bf16 moved the validation probabilities at export,
for `--precision auto`: vcpred.bundle.precision_check), training_data {synthetic, evidence} (from
the source runs' config.yaml: synthetic when any run's manifest came from `vcpred synth`; bundles
exported before it was recorded read as not recorded, not synthetic), recalibration (optional: the
logistic recalibration prediction applies, fitted by `vcpred export` on the development patients'
out-of-split probabilities or by `vcpred validate --recalibrate`; vcpred.bundle.recalibration),
validation_calibration (optional: the out-of-split calibration before and, cross-fitted, after the
export's recalibration, or why there is none; vcpred.bundle.export_calibration), training_patients
(optional: the development patients of the exported splits' training and validation sets, with the
digests of their image inputs, that `vcpred validate` leaves out; vcpred.bundle.known_patients;
bundles exported before it was recorded read as None), files {relative path: sha256}, meta_sha256 (sha256 of bundle.json's own content
without this key, so edited thresholds or parameters are caught too). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcpred.bundle.known_patients import KnownPatients
from vcpred.errors import WeightsError
from vcpred.hashing import sha256_files
from vcpred.jsonio import from_dict, json_text, jsonable
from vcpred.workers import start_in_thread

BUNDLE_FORMAT = "vcpred-model-bundle"
BUNDLE_VERSION = 1  # written when the split models have their own backbones
SHARED_BACKBONE_VERSION = 2  # written when they share backbone.safetensors; older vcpreds refuse it
READABLE_VERSIONS = (BUNDLE_VERSION, SHARED_BACKBONE_VERSION)
BUNDLE_FILE, CARD_FILE = "bundle.json", "MODEL_CARD.md"
WEIGHTS_FILE, SPEC_FILE, CLINICAL_FILE = "model.safetensors", "model.json", "clinical.json"
SHARED_BACKBONE_FILE, BACKBONE_PREFIX = "backbone.safetensors", "backbone."


class BundleError(WeightsError):
    """A model directory is incomplete, altered or not a vcpred export."""


@dataclass(frozen=True)
class SplitEntry:
    """One split model of a bundle: its folder, source run and Youden threshold (None: infinite)."""

    split: int
    dir: str
    threshold: float | None = None
    run: str | None = None


@dataclass(frozen=True)
class BundleMeta:
    """bundle.json, typed (the layout above). Keys that bundles of earlier vcpreds lack have defaults
    that say so; the parts other modules own stay mappings: prepare_params (imaging.PrepareParams),
    spec (models.ModelSpec), training_data (cohort.provenance), bf16_check
    (predict.precision_check), recalibration (bundle.recalibration), validation_calibration
    (bundle.export_calibration); training_patients is typed (bundle.known_patients)."""

    format: str
    version: int
    model_id: str
    configuration: str
    kind: str  # "image" | "clinical_only"
    splits: list[SplitEntry]
    threshold: float
    family: str | None = None  # "vit" | "cnn" (image models)
    ap: bool = False
    aggregate: str = "mean"
    clinical_columns: list[str] = field(default_factory=list)
    clinical_ranges: dict[str, dict[str, Any]] = field(default_factory=dict)
    prepare_params: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    threshold_rule: str = ""
    training_data: dict[str, Any] | None = None
    shared_backbone: str | None = None
    bf16_check: dict[str, Any] | None = None
    recalibration: dict[str, Any] | None = None
    validation_calibration: dict[str, Any] | None = None
    training_patients: KnownPatients | None = None
    notice: str = ""
    vcpred_version: str = ""
    files: dict[str, str] = field(default_factory=dict)
    meta_sha256: str = ""

    @property
    def image(self) -> bool:
        return self.kind == "image"

    @property
    def split_models_threshold(self) -> float:
        """The development threshold on the split models' own probability scale (the one `vcpred
        evaluate` computes): `threshold`, or in a recalibrated bundle the threshold recorded before its
        first recalibration (by export or validate)."""
        record = self.recalibration
        if not record:
            return self.threshold
        while record.get("previous"):
            record = record["previous"]
        before = record.get("threshold_before")
        return self.threshold if before is None else float(before)


def parse_meta(raw: dict, where: str | Path = BUNDLE_FILE) -> BundleMeta:
    """The typed bundle.json; BundleError naming the key that does not fit."""
    try:
        return from_dict(BundleMeta, raw, str(where))
    except ValueError as exc:
        raise BundleError(f"{exc}; export the model again") from None


def read_meta(folder: Path) -> dict:
    path = folder / BUNDLE_FILE
    if not folder.is_dir():
        raise BundleError(f"model directory {folder} does not exist; pass the --out folder of `vcpred export`")
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{folder} has no {BUNDLE_FILE}: not a `vcpred export` model directory, or an "
                          "incomplete copy; export it again or copy the whole folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:  # a damaged byte may not be UTF-8
        raise BundleError(f"{path} is not readable JSON ({exc}); export the model again") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a vcpred model bundle (format {meta.get('format')!r})")
    if meta.get("version") not in READABLE_VERSIONS:
        raise BundleError(f"{path} has bundle version {meta.get('version')}; this vcpred reads versions "
                          f"{', '.join(map(str, READABLE_VERSIONS))}: export the model again with this vcpred")
    return meta


def meta_digest(meta: dict) -> str:
    """sha256 of the canonical JSON of meta without its own digest."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_bundle_json(folder: Path, meta: dict, model_files: dict[str, str]) -> dict:
    """Seal a model directory whose MODEL_CARD.md is written: bundle.json lists every file with its
    sha256 (the card's included) and the digest of its own content, taken over exactly what is
    written (strict JSON); returns that meta. Export and recalibration both end here."""
    meta = jsonable({**meta, "files": {**model_files, **sha256_files(folder, [CARD_FILE])}})
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
    actual = sha256_files(folder, sorted(listed))
    changed = sorted(r for r, digest in actual.items() if digest != listed[r])
    if changed:
        raise BundleError(f"model directory {folder}: {', '.join(changed)} changed since export (sha256 "
                          "mismatch); the files are corrupt or were edited: copy or export the model again")


def checked_meta(folder: Path, *, verify: bool = True) -> dict:
    """bundle.json of a model directory, after checking every file's sha256 (when verify)."""
    meta = read_meta(folder)
    if verify:
        verify_files(folder, meta)
    return meta


def check_in_background(folder: str | Path) -> Future:
    """checked_meta in a thread, started before torch and timm are imported: hashing a large model
    (3.4 GB for ten ViT-B/16) then costs little more than the imports. The Future gives the meta or
    raises what the check raised."""
    return start_in_thread("verify", checked_meta, Path(folder))
