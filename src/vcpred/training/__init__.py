"""Training one configuration on one split, writing a run dir with its predictions table."""

from vcpred.lazy import lazy_exports

# name -> defining submodule, imported on first use: parsing a TrainConfig must not load torch
_EXPORTS = {
    "TrainConfig": "config",
    "TrainingParams": "config",
    "load_config": "config",
    "train_run": "run",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
