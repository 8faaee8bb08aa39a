"""The run-folder contract: what one training run writes and every later stage reads.

RUNS/<configuration>/split-<KK>/      one run (layout.py)
  config.yaml      what was trained and on what: parsed only here, into a RunRecord (record.py)
  predictions.csv  patient_id, set, split, frame_offset, probability, label (predictions.py)
  metrics.json, model/   training curve and loss (recorded_loss); trained tensors

Training writes it; experiment, evaluate, export, explain and report read it through this package
and never by string keys of their own. A run is finished when config.yaml says `status: done` and
predictions.csv exists (`unfinished_reason`); its files are the ones it wrote when their sha256
still matches what config.yaml recorded (`verify_outputs`). config.yaml records where its manifest,
store and splits file lie relative to the run dir (`input_paths`: a whole folder of runs, store and
cohort may move) with their fingerprints (`inputs`); vcpred.training.run_inputs verifies them.
"""

from vcpred.runs.layout import SPLIT_DIR, configuration_run_dirs, run_dirs, run_label, run_path, split_dir_name
from vcpred.runs.predictions import PREDICTION_COLUMNS, SETS, read_predictions, write_predictions
from vcpred.runs.record import (
    INPUT_KEYS,
    RETRAIN,
    RunRecord,
    finished_records,
    input_paths_of,
    is_finished,
    load_run_config,
    output_problems,
    read_done,
    read_finished,
    read_record,
    recorded_loss,
    unfinished_reason,
    verify_outputs,
    written_by_training,
)

__all__ = [
    "INPUT_KEYS", "PREDICTION_COLUMNS", "RETRAIN", "SETS", "SPLIT_DIR", "RunRecord", "configuration_run_dirs", "finished_records",
    "input_paths_of", "is_finished",
    "load_run_config", "output_problems", "read_done", "read_finished", "read_predictions", "read_record", "recorded_loss", "run_dirs", "run_label",
    "run_path", "split_dir_name", "unfinished_reason", "verify_outputs", "write_predictions", "written_by_training",
]
