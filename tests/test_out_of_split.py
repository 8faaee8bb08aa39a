"""evaluate.out_of_split: each development patient's mean probability over the splits that validated it."""

import pandas as pd
import pytest

from vcpred.evaluate.errors import EvaluationError
from vcpred.evaluate.out_of_split import out_of_split


def table(rows):
    frame = pd.DataFrame(rows, columns=["patient_id", "set", "label", "probability"]).set_index("patient_id")
    return frame


def test_each_patient_averages_only_the_splits_that_validated_it():
    tables = {
        0: table([("a", "validation", 1, 0.8), ("b", "train", 0, 0.1), ("x", "external", 1, 0.9)]),
        1: table([("a", "train", 1, 0.99), ("b", "validation", 0, 0.3), ("x", "external", 1, 0.2)]),
        2: table([("a", "validation", 1, 0.6), ("b", "validation", 0, 0.5), ("c", "validation", None, 0.4)]),
    }
    pooled = out_of_split(tables)
    assert list(pooled.index) == ["a", "b"]  # x is external; c has no label
    assert pooled.loc["a", "probability"] == pytest.approx(0.7)  # 0.8 and 0.6, not the training 0.99
    assert pooled.loc["b", "probability"] == pytest.approx(0.4)
    assert list(pooled["n_splits"]) == [2, 2] and list(pooled["label"]) == [1, 0]


def test_a_patient_labelled_differently_in_two_splits_is_refused():
    tables = {0: table([("a", "validation", 1, 0.8)]), 1: table([("a", "validation", 0, 0.6)])}
    with pytest.raises(EvaluationError, match="patient 'a' has different labels"):
        out_of_split(tables)
