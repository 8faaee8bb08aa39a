"""Pure statistics over predictions: AUC, DeLong CI and paired test, Youden threshold,
calibration, decision-curve net benefit (docs/evaluation.md gives every definition).

Helpers outside this list live in the modules: `metrics.sensitivity_specificity`,
`decision.net_benefit_treat_all`; the error class is `vcpred.stats.errors.StatsError`.
"""

from vcpred.stats._checks import MIN_PER_CLASS
from vcpred.stats.calibration import CalibrationCurve, CalibrationResult, calibration
from vcpred.stats.decision import net_benefit
from vcpred.stats.delong import DeLongResult, delong_ci, delong_test
from vcpred.stats.metrics import roc_auc, youden_threshold

__all__ = [
    "MIN_PER_CLASS", "CalibrationCurve", "CalibrationResult", "DeLongResult", "calibration", "delong_ci",
    "delong_test", "net_benefit", "roc_auc", "youden_threshold",
]
