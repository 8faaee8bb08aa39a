"""`vcpred export`: a configuration's split models -> one self-contained model directory.

Thresholds: each split's Youden threshold is recomputed from that run's own validation
predictions (predictions.csv), aggregated the way the bundle predicts (AP over frames with the
chosen aggregate, or the main frame only), with vcpred.stats.youden_threshold: the same rule as
`vcpred evaluate`, so an EVAL folder is not needed. EVAL is read only for the model card's
performance numbers. The development threshold is the median over splits.

Recalibration (vcpred.bundle.export_calibration): unless turned off, or the development patients
are too few, a logistic recalibration is fitted on the development patients' out-of-split
probabilities and recorded in bundle.json; the threshold and each split's threshold are then mapped
through it (after the median is taken on the raw scale), so the same patients are called high risk.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vcpred import RESEARCH_NOTICE, __version__, console
from vcpred.cohort.provenance import combined as combined_training_data
from vcpred.errors import ConfigError, VcpredError
from vcpred.hashing import sha256_files
from vcpred.jsonio import to_dict
from vcpred.evaluate.aggregate import AGGREGATES, aggregate
from vcpred.evaluate.per_split import development_threshold, validation_threshold
from vcpred.evaluate.runs import read_run, warn_unverified
from vcpred.explain.maps import model_family
from vcpred.models import load_model, merged
from vcpred.output_folder import replacing
from vcpred.predict.bundle import build_network
from vcpred.bundle.files import (
    BACKBONE_PREFIX, BUNDLE_FORMAT, BUNDLE_VERSION, CARD_FILE, CLINICAL_FILE, SHARED_BACKBONE_FILE,
    SHARED_BACKBONE_VERSION, SPEC_FILE, WEIGHTS_FILE, parse_meta, write_bundle_json,
)
from vcpred.bundle.card import check_eval, model_card
from vcpred.bundle.export_calibration import export_calibration
from vcpred.bundle.known_patients import KnownPatients, known_patients
from vcpred.bundle.recalibration import apply as recalibrated
from vcpred.bundle.precision_check import bf16_check
from vcpred.runs import (
    RunRecord, configuration_run_dirs, read_finished, run_label, split_dir_name, verify_outputs,
)
from vcpred.training.run_inputs import check_run_inputs

LOGIT_TOLERANCE = 1e-4  # merged vs run model, fp32
BF16_CHECK_PATIENTS = 8  # validation patients per split scored in bf16 at export


def find_runs(runs: Path, configuration: str) -> list[RunRecord]:
    """Finished split runs of one configuration (RUNS/<configuration>/split-KK/), verified: every
    file the run recorded has its sha256 (RunError naming the file otherwise), and the runs
    share one splits file, manifest and store, still the ones they record (vcpred.training.run_inputs)."""
    folder = Path(runs) / configuration
    if not folder.is_dir():
        known = sorted(p.name for p in Path(runs).glob("*") if p.is_dir()) if Path(runs).is_dir() else []
        raise ConfigError(f"no configuration {configuration!r} under {runs}; found: {', '.join(known) or 'nothing'}")
    found, unverified = [], []
    for run_dir in configuration_run_dirs(folder):
        record, reason = read_finished(run_dir)
        if reason:
            console.warn(f"skipping {run_dir}: not a finished run ({reason})")
            continue
        if not verify_outputs(run_dir, record.raw):
            unverified.append(run_label(run_dir))
        found.append(record)
    if not found:
        raise ConfigError(f"{folder} holds no finished split runs (config.yaml with status: done); train them first")
    warn_unverified(unverified)
    # the store's params go in the bundle; the manifest and splits file say who it was trained on
    check_run_inputs(found, needed=("manifest", "splits", *(("store",) if found[0].image else ())))
    return found


def run_table(run: RunRecord, *, ap: bool, rule: str):
    """This run's predictions aggregated the way the bundle predicts (AP over frames when ap)."""
    return aggregate(read_run(run).predictions, ap=ap, rule=rule)


def split_threshold(run: RunRecord, *, ap: bool, rule: str, table=None) -> float | None:
    """Youden's threshold on this run's validation patients (AP-aggregated when ap); None if infinite.
    table: run_table(run, ap=ap, rule=rule) when already read."""
    table = run_table(run, ap=ap, rule=rule) if table is None else table
    threshold, _, _ = validation_threshold(table, run.path / "predictions.csv")
    return threshold if abs(threshold) != float("inf") else None


def _training_cohort(sources: list[RunRecord], training_data: dict) -> dict:
    """The manifest the split models were trained on, as a recalibration record names its cohort."""
    from vcpred.cohort.provenance import is_synthetic

    return {"manifest": str(sources[0].manifest), "manifest_sha256": sources[0].manifest_sha256,
            "synthetic": is_synthetic(training_data)}


def training_patients(sources: list[RunRecord]) -> KnownPatients:
    """The development patients of every exported split's training and validation set, from the splits
    file the runs were trained on (verified by find_runs), with the digests of their image inputs read
    through the training manifest (vcpred.bundle.known_patients): the patients `vcpred validate` leaves out."""
    from vcpred.cohort import load_manifest, load_splits

    first = sources[0]
    try:
        splits = load_splits(first.splits)
        cohort = load_manifest(first.manifest, check_files=False)
    except (VcpredError, OSError) as exc:
        raise VcpredError(f"{first.path}: the export records who the split models were trained on, from the "
                          f"splits file and manifest they were trained on: {exc}") from None
    ids: set[str] = set()
    for run in sources:
        if not 0 <= run.split < len(splits):
            raise VcpredError(f"{run.path} is split {run.split}, but {first.splits} has splits 0..{len(splits) - 1}; "
                              "train the runs again")
        ids |= {*splits[run.split].train_ids, *splits[run.split].val_ids}
    known = known_patients([record for record in cohort.records if record.patient_id in ids],
                           f"the training and validation patients of splits {', '.join(str(r.split) for r in sources)} "
                           f"of {first.splits.name}")
    unlisted = sorted(ids - set(known.patients))  # not in the manifest (checked unchanged): kept, by id
    return replace(known, patients=sorted([*known.patients, *unlisted]))


def _patients_line(known: KnownPatients) -> str:
    without = len(known.patients) - len(known.images)
    return (f"recorded the {len(known.patients)} development patient(s) the split models were trained or tuned on, "
            "which `vcpred validate` leaves out"
            + (f" ({without} without image files to recognise them by: by id only)" if without else ""))


def prepare_params(run: RunRecord) -> dict:
    """The prepared store's PrepareParams (complete, defaults filled in) this run trained on."""
    from vcpred.imaging import PrepareParams
    from vcpred.imaging.store import StoreError
    from vcpred.imaging.store import store_params

    try:
        params = store_params(run.store)
    except StoreError as exc:
        raise VcpredError(f"{run.path}: the export needs the preprocessing parameters of its prepared store: "
                          f"{exc}") from None
    return PrepareParams.from_dict(params).to_dict()


def clinical_ranges(run: RunRecord) -> dict:
    """Per numeric clinical column, the min and max over the development patients (and the values
    when at most two occur, e.g. 0/1 flags), for input forms (`vcpred serve`); {} when the training
    manifest is no longer readable. Categorical columns need none: their categories are in clinical.json."""
    from vcpred.cohort import load_manifest

    try:
        cohort = load_manifest(run.manifest)
    except (VcpredError, OSError):
        return {}
    ranges = {}
    for name in run.clinical_columns:
        values = sorted({float(r.clinical[name]) for r in cohort.subset("development")
                         if isinstance(r.clinical.get(name), (int, float))})
        if values and cohort.clinical_columns.get(name) == "numeric":
            ranges[name] = {"min": values[0], "max": values[-1], **({"values": values} if len(values) <= 2 else {})}
    return ranges


def _check_merged(run: RunRecord, state: dict, spec: dict, width: int, reference: torch.Tensor,
                  probe: tuple) -> None:
    """The exported tensors rebuilt into a plain model give the run model's logits."""
    rebuilt = build_network(spec, width, state)
    with torch.no_grad():
        logits = rebuilt(*probe)
    gap = float((logits - reference).abs().max())
    if gap > LOGIT_TOLERANCE:
        raise VcpredError(f"{run.path}: the exported model's logits differ from the run's by {gap:.2e}; "
                          "this is a bug in vcpred export, please report it")


def export_image_split(run: RunRecord, target: Path) -> dict:
    """model.safetensors (merged full state) + model.json; returns {'family', 'spec'}."""
    built = load_model(run.path / "model")
    width = built.clinical_features
    weights_record = run.weights
    generator = torch.Generator().manual_seed(0)
    image_size = int(prepare_params(run)["size"])
    probe = (torch.rand(2, 3, image_size, image_size, generator=generator),
             torch.randn(2, width, generator=generator) if built.spec.uses_clinical else None)
    built.net.eval()
    with torch.no_grad():
        reference = built.net(*probe)
    core = merged(built).eval()
    state = {k: v.detach().cpu().contiguous() for k, v in core.state_dict().items()}
    save_file(state, str(target / WEIGHTS_FILE))
    spec = built.spec.to_dict()
    _check_merged(run, state, spec, width, reference, probe)
    (target / SPEC_FILE).write_text(json.dumps({
        "spec": spec, "clinical_features": width, "merged_from": built.spec.method, "weights": weights_record,
        "source_run": str(run.path)}, indent=1) + "\n")
    return {"family": model_family(core), "spec": spec}


def export_configuration(runs: str | Path, configuration: str, out: str | Path, *, eval_dir: str | Path | None = None,
                         ap: bool = True, rule: str = "mean", force: bool = False,
                         bf16_check_patients: int = BF16_CHECK_PATIENTS, recalibrate: bool = True) -> Path:
    """Write MODEL_DIR (layout in vcpred.predict.bundle) for one configuration; returns it.
    bf16_check_patients: validation patients per split scored in bf16 for `--precision auto`
    (vcpred.bundle.precision_check; 0: no check, so auto predicts in fp32). recalibrate: fit the
    recalibration on the development patients' out-of-split probabilities when they are enough
    (vcpred.bundle.export_calibration); the one line saying what was done is printed."""
    if rule not in AGGREGATES:
        raise ConfigError(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {rule!r}")
    if bf16_check_patients < 0:
        raise ConfigError(f"--bf16-check-patients must be 0 or more, got {bf16_check_patients}")
    if eval_dir is not None:  # refused now, not after the split models are exported
        check_eval(eval_dir, runs)
    sources = find_runs(Path(runs), configuration)
    first = sources[0]
    patients = training_patients(sources)
    image = first.image
    out = Path(out)
    # Written beside MODEL_DIR and put in place complete: a failed export leaves an earlier one as it was;
    # only an earlier export is replaced (with --force), never another folder (vcpred.output_folder).
    with replacing(out, kind="model", force=force) as folder:
        entries, family, specs, tables = [], None, [], {}
        for run in console.progress(sources, desc="export"):
            target = folder / split_dir_name(run.split)
            target.mkdir()
            if (run.path / "model" / CLINICAL_FILE).is_file():
                shutil.copyfile(run.path / "model" / CLINICAL_FILE, target / CLINICAL_FILE)
            if image:
                exported = export_image_split(run, target)
                family = exported["family"]
                specs.append(exported["spec"])
            tables[run.split] = run_table(run, ap=ap and image, rule=rule)
            entries.append({"split": run.split, "dir": target.name, "run": str(run.path),
                            "threshold": split_threshold(run, ap=ap and image, rule=rule, table=tables[run.split])})
        if len({json.dumps({**s, "seed": 0}, sort_keys=True) for s in specs}) > 1:
            raise ConfigError(f"the split runs of {configuration!r} use different model settings; export needs one")
        shared = image and keep_shared_backbone_once(folder, [e["dir"] for e in entries])
        training_data = combined_training_data([run.training_data for run in sources])
        calibration = export_calibration(tables, enabled=recalibrate, cohort=_training_cohort(sources, training_data))
        meta = {
            "configuration": configuration, "kind": "image" if image else "clinical_only", "family": family,
            "ap": bool(ap and image), "aggregate": rule,
            "clinical_columns": list(first.clinical_columns),
            "clinical_ranges": clinical_ranges(first),
            "prepare_params": prepare_params(sources[0]) if image else None,
            "spec": specs[0] if specs else None, "splits": entries,
            "shared_backbone": SHARED_BACKBONE_FILE if shared else None,
            "training_data": training_data,
            "bf16_check": bf16_check(folder, sources, entries, ap=bool(ap and image), rule=rule,
                                     patients=bf16_check_patients) if image else None,
            "recalibration": calibration.record, "validation_calibration": calibration.validation,
            "training_patients": to_dict(patients),
        }
        finalise_bundle(folder, meta, lambda full: model_card(full, sources, eval_dir))
    console.say(calibration.line)
    console.say(_patients_line(patients))
    return out


def keep_shared_backbone_once(folder: Path, split_dirs: list[str]) -> bool:
    """When every split model's backbone tensors are equal (a linear probe: one frozen pre-trained
    backbone), write them once as backbone.safetensors and drop them from each split's weights: a
    ViT-B/16 linear probe of 10 splits is then 0.35 GB instead of 3.4 GB to copy, hash and load."""
    states = [load_file(str(folder / d / WEIGHTS_FILE)) for d in split_dirs]
    backbone = {k: v for k, v in states[0].items() if k.startswith(BACKBONE_PREFIX)}
    if len(states) < 2 or not backbone:
        return False
    for state in states[1:]:
        keys = {k for k in state if k.startswith(BACKBONE_PREFIX)}
        if keys != backbone.keys() or not all(torch.equal(state[k], backbone[k]) for k in backbone):
            return False
    save_file(backbone, str(folder / SHARED_BACKBONE_FILE))
    for split_dir, state in zip(split_dirs, states):
        save_file({k: v for k, v in state.items() if not k.startswith(BACKBONE_PREFIX)},
                  str(folder / split_dir / WEIGHTS_FILE))
    return True


def _ensemble_threshold(splits: list[dict]) -> float:
    threshold = development_threshold([e["threshold"] for e in splits])
    if math.isnan(threshold):
        raise VcpredError("no split has a finite Youden threshold (constant validation predictions?); "
                          "the model cannot assign risk categories")
    return threshold


def finalise_bundle(out: Path, meta: dict, card) -> Path:
    """Complete meta (format, id, threshold, hashes) for the split folders already in out, write
    MODEL_CARD.md (card(meta) -> text) and bundle.json; returns out. With meta['recalibration'] (an
    export's, without threshold_before), the thresholds are mapped through it."""
    files = sha256_files(out, sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()))
    tag = "+AP" if meta["ap"] else ""
    version = SHARED_BACKBONE_VERSION if meta.get("shared_backbone") else BUNDLE_VERSION
    meta = {"format": BUNDLE_FORMAT, "version": version, "vcpred_version": __version__,
            "model_id": f"{meta['configuration']}{tag}@{_short_id(files, meta.get('recalibration'))}", **meta,
            "threshold": _ensemble_threshold(meta["splits"]),
            "threshold_rule": "median over split models of Youden's J threshold on each split's validation "
                              "predictions (AP-aggregated when ap)",
            "notice": RESEARCH_NOTICE}
    if meta.get("recalibration"):
        meta = _recalibrated_thresholds(meta)
    (out / CARD_FILE).write_text(card(parse_meta(meta)))
    write_bundle_json(out, meta, files)
    return out


def _recalibrated_thresholds(meta: dict) -> dict:
    """The development threshold (the median, taken on the split models' own scale) and each split's
    threshold mapped through the export's recalibration: a monotone map, so every patient keeps its
    risk category while its probability changes."""
    record = meta["recalibration"]
    a, b = record["intercept"], record["slope"]

    def mapped(value):
        return None if value is None else recalibrated(float(value), a, b)

    return {**meta, "recalibration": {**record, "threshold_before": meta["threshold"]},
            "threshold": mapped(meta["threshold"]),
            "threshold_rule": meta["threshold_rule"] + "; then mapped through the recalibration fitted at export "
                                                       "(the same function as the probabilities)",
            "splits": [{**e, "threshold": mapped(e["threshold"])} for e in meta["splits"]]}


def _short_id(files: dict[str, str], recalibration: dict | None = None) -> str:
    """A short id from the hashes of the model files (and the recalibration's intercept and slope, when
    the export fitted one): the same tensors and the same recalibration give the same id."""
    key = files if not recalibration else [files, [recalibration["intercept"], recalibration["slope"]]]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
