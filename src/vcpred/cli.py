"""The `vcpred` command. Each subcommand is a thin call into the library.

User errors (VcpredError, and OS errors a user causes: a full or read-only disk, permissions, a
quota) print `error: <message>` on stderr and exit 2, without a traceback unless --debug is given.
Any other exception is a bug in vcpred.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from vcpred import RESEARCH_NOTICE, __version__, console, os_errors
from vcpred.allocator import keep_freed_memory
from vcpred.errors import VcpredError
from vcpred.workers import interrupt_on_sigterm

# Subcommand -> (module defining `register(subparsers)`, one-line help). Only the module of the
# command being run is imported, so `vcpred cohort check` does not pay for torch, peft or ITK.
COMMANDS = {
    "cohort": ("vcpred.cohort.command", "check a cohort manifest; make patient-level splits"),
    "synth": ("vcpred.synth.command", "generate a synthetic OVCF cohort with a known true risk"),
    "prepare": ("vcpred.imaging.command", "read, N4-correct, crop and normalise every patient's frames"),
    "weights": ("vcpred.models.command", "list, download or import pre-trained weights"),
    "train": ("vcpred.training.command", "train one configuration on one split; write a run dir"),
    "experiment": ("vcpred.experiment.command", "train every configuration of a grid on every split"),
    "evaluate": ("vcpred.evaluate.command", "AUC, thresholds, DeLong, calibration over a RUNS folder"),
    "demo": ("vcpred.demo", "run the whole pipeline on a synthetic cohort"),
    "export": ("vcpred.bundle.command", "export a configuration's split models as one model directory"),
    "predict": ("vcpred.predict.command", "predict collapse for new patients with an exported model"),
    "validate": ("vcpred.validate.command", "score an exported model on a labelled cohort (external validation)"),
    "report": ("vcpred.report.command", "the study-style HTML report of an evaluation"),
    "serve": ("vcpred.serve.command", "local web viewer: load an MRI, draw the ROI, see the risk"),
    "annotate": ("vcpred.serve.annotate_command", "place each patient's ROI in the viewer; saves into the manifest"),
}
# Subcommand -> modules of higher layers whose `register(actions)` adds actions to it: `vcpred cohort shift`
# reads the prepared store, which vcpred.cohort (a layer below vcpred.imaging) may not import.
ACTIONS = {"cohort": ("vcpred.evaluate.shift_command",)}


def _chosen_command(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with argv, only the chosen subcommand's module is imported (None: all of them)."""
    parser = argparse.ArgumentParser(
        prog="vcpred",
        description="Predict vertebral collapse after osteoporotic vertebral compression fracture "
                    f"from sagittal spine MRI and clinical data. {RESEARCH_NOTICE}",
    )
    parser.add_argument("--version", action="version", version=f"vcpred {__version__}")
    parser.add_argument("--quiet", action="store_true", help="print only errors and warnings")
    parser.add_argument("--debug", action="store_true", help="debug logging; tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen_command(argv) if argv is not None else None
    for name, (module, help_text) in COMMANDS.items():
        if argv is None or name == chosen:
            actions = importlib.import_module(module).register(subparsers)
            for extra in ACTIONS.get(name, ()):
                importlib.import_module(extra).register(actions)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    return _main(argv)[0]


def _main(argv: list[str] | None) -> tuple[int, argparse.Namespace]:
    """The exit code and the parsed arguments."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return (0 if args.command is None else 2), args
    console.configure(quiet=args.quiet, debug=args.debug)
    keep_freed_memory()  # the models' layers reuse freed memory from the first call on
    return _execute(args), args


def _execute(args: argparse.Namespace) -> int:
    try:
        with interrupt_on_sigterm():  # SIGTERM: the same clean-up and exit 130 as Ctrl-C
            return int(args.func(args) or 0)
    except VcpredError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # a full or read-only disk, permissions (also inside a library's own error, e.g. safetensors'):
        # the user's to fix, not a bug
        message = os_errors.describe(exc, where=_output_of(args))
        if message is None:
            return _internal_error(exc, args.debug)
        if args.debug:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return 2


def _output_of(args: argparse.Namespace) -> str | None:
    """The output the command writes (its --out), to name when an OS error carries no file name."""
    out = getattr(args, "out", None)
    return str(out) if out else None


def _internal_error(exc: Exception, debug: bool) -> int:
    """A bug: say so plainly, traceback under --debug."""
    if debug:
        traceback.print_exc()
    print(f"internal error (a bug in vcpred, please report it): {type(exc).__name__}: {exc}\n"
          "rerun with --debug for the traceback", file=sys.stderr)
    return 1


def run() -> None:
    """The `vcpred` console script. A command that sets `exit_at_once` (predict) ends the process as
    soon as it has returned and the console is flushed, without the interpreter's teardown: freeing
    ten ViT-B/16 models' modules took a new `vcpred predict` process 1 s after its outputs were
    written. Such a command writes every file before it returns and leaves no clean-up to exit."""
    code, args = _main(None)
    if getattr(args, "exit_at_once", False):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
