"""`vcpred evaluate`: per-split and ensemble metrics, comparisons and tables from run predictions."""

from vcpred.lazy import lazy_exports

# name -> defining submodule, imported on first use: prediction reads evaluate.aggregate (the AP rule)
# and must not load the statistics behind the evaluation (scipy, statsmodels: 0.8 s)
_EXPORTS = {
    "Evaluation": "core",
    "EvaluationError": "errors",
    "evaluate_runs": "core",
    "write_outputs": "outputs",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
