"""`vcpred evaluate`: per-split and ensemble metrics, comparisons and tables from run predictions."""

from vcpred.evaluate.core import Evaluation, evaluate_runs
from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.outputs import write_outputs

__all__ = ["Evaluation", "EvaluationError", "evaluate_runs", "write_outputs"]
