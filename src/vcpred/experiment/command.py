"""`vcpred experiment CONFIG --out RUNS [--executor local|slurm] [--jobs N]`."""

from __future__ import annotations

import argparse

import yaml

from vcpred import console
from vcpred.experiment.executor import run_experiment
from vcpred.experiment.grid import load_experiment
from vcpred.experiment.preflight import check_slurm


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("experiment", help="train every configuration of a grid on every split")
    parser.add_argument("config", help="experiment config (YAML)")
    parser.add_argument("--out", required=True, help="RUNS folder: one run dir per configuration and split")
    parser.add_argument("--executor", choices=["local", "slurm"], default="local",
                        help="local: this machine (--jobs processes); slurm: one SLURM job array through submitit "
                             "(needs sbatch and srun on PATH: an error otherwise, never a fall back to this machine)")
    parser.add_argument("--jobs", type=int, default=1, help="local worker processes")
    parser.add_argument("--slurm-params", help="YAML mapping passed to submitit's update_parameters, "
                                               "e.g. '{timeout_min: 120, slurm_partition: gpu, gpus_per_node: 1}'")
    parser.add_argument("--retrain-stale", action="store_true",
                        help="train again the finished runs whose inputs changed (configuration, splits file, "
                             "manifest, prepared store) or whose files are damaged; without it the experiment "
                             "stops and lists them, replacing nothing")
    parser.add_argument("--list", action="store_true", help="print the runs and exit (writes nothing)")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    if args.executor == "slurm" and not args.list:
        check_slurm()  # exit 2 before anything is written: never a silent fall back to this machine
    specs = load_experiment(args.config, write_splits=not args.list)  # --list writes nothing
    if args.list:
        for spec in specs:
            console.say(spec.label)
        return 0
    names = sorted({s.name for s in specs})
    console.say(f"{len(names)} configuration(s) × {len(specs) // max(len(names), 1)} split(s) = {len(specs)} runs")
    params = yaml.safe_load(args.slurm_params) if args.slurm_params else {}
    summary = run_experiment(specs, args.out, executor=args.executor, jobs=args.jobs, slurm_params=params,
                             retrain_stale=args.retrain_stale)
    for line in summary.lines():
        console.say(line)
    return 2 if summary.failed else 0
