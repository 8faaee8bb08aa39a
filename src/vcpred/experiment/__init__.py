"""Experiments: configuration grids expanded over splits, run locally or on SLURM via submitit."""

from vcpred.experiment.executor import ExperimentSummary, run_experiment
from vcpred.experiment.grid import RunSpec, load_experiment

__all__ = ["ExperimentSummary", "RunSpec", "load_experiment", "run_experiment"]
