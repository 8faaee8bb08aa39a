"""Decision curves of the split ensembles on the external set (evaluation.json `decision_curves`):
net benefit of each variant over threshold probabilities, with treat-all and treat-none
(vcpred.stats.net_benefit), and the `--thresholds START:STOP:STEP` grid they are drawn over."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from vcpred.evaluate.ensemble import Ensemble, two_per_class
from vcpred.evaluate.errors import EvaluationError
from vcpred.jsonio import from_dict, to_dict
from vcpred.stats import net_benefit
from vcpred.stats.decision import net_benefit_treat_all


@dataclass(frozen=True)
class DecisionCurves:
    """Net benefit per variant label at each threshold; every curve has one value per threshold."""

    thresholds: tuple[float, ...]
    treat_all: tuple[float, ...]
    treat_none: tuple[float, ...]
    net_benefit: dict[str, tuple[float, ...]]


def parse_thresholds(text: str) -> np.ndarray:
    """'START:STOP:STEP' (STOP included) -> threshold probabilities in (0, 1); shape (k,)."""
    try:
        start, stop, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise EvaluationError(f"--thresholds {text!r} must be START:STOP:STEP, e.g. 0.05:0.95:0.01") from None
    if not (0 < start <= stop < 1 and step > 0):
        raise EvaluationError(f"--thresholds {text!r}: need 0 < START <= STOP < 1 and STEP > 0")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    return np.round(start + step * np.arange(count), 10)


def decision_curves(ensembles: Mapping[object, Ensemble], thresholds: np.ndarray) -> DecisionCurves | None:
    """Net benefit of each variant's ensemble, with treat-all and treat-none, over thresholds; None
    when no ensemble has 2 labelled patients of each class."""
    usable = {v: e for v, e in ensembles.items() if two_per_class(e)}
    if not usable:
        return None
    first = next(iter(usable.values())).labelled["label"].to_numpy(int)
    curves = {v.label: tuple(map(float, net_benefit(e.labelled["label"].to_numpy(int),
                                                    e.labelled["probability"].to_numpy(), thresholds)))
              for v, e in usable.items()}
    return DecisionCurves(tuple(map(float, thresholds)), tuple(map(float, net_benefit_treat_all(first, thresholds))),
                          (0.0,) * len(thresholds), curves)


def decision_json(curves: DecisionCurves | None) -> dict:
    """evaluation.json `decision_curves` (and validate's metrics.json `decision_curve`); {} for none."""
    return {} if curves is None else to_dict(curves)


def read_decision(data: Mapping | None) -> DecisionCurves | None:
    """`decision_json` read back (None or {}: none); ValueError when it is not one."""
    return from_dict(DecisionCurves, data, "decision_curves") if data else None
