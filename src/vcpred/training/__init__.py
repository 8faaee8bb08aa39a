"""Training one configuration on one split, writing a run dir with its predictions table."""

from vcpred.training.config import TrainConfig, TrainingParams, load_config
from vcpred.training.run import PREDICTION_COLUMNS, train_run

__all__ = ["PREDICTION_COLUMNS", "TrainConfig", "TrainingParams", "load_config", "train_run"]
