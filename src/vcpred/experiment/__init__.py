"""Experiments: configuration grids expanded over splits, run locally or on SLURM via submitit."""

from vcpred.experiment.executor import ExperimentSummary, is_finished, run_experiment
from vcpred.experiment.grid import RunSpec, load_experiment

__all__ = ["ExperimentSummary", "RunSpec", "is_finished", "load_experiment", "run_experiment"]
