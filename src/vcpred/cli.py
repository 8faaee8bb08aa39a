"""The `vcpred` command. Each subcommand is a thin call into the library.

User errors (VcpredError) print `error: <message>` on stderr and exit 2, without a traceback
unless --debug is given. Any other exception is a bug in vcpred.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from vcpred import RESEARCH_NOTICE, __version__, console
from vcpred.errors import VcpredError

# Modules that each define `register(subparsers)`; one line per capability.
COMMAND_MODULES = [
    "vcpred.cohort.command",
    "vcpred.models.command",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vcpred",
        description="Predict vertebral collapse after osteoporotic vertebral compression fracture "
                    f"from sagittal spine MRI and clinical data. {RESEARCH_NOTICE}",
    )
    parser.add_argument("--version", action="version", version=f"vcpred {__version__}")
    parser.add_argument("--quiet", action="store_true", help="print only errors and warnings")
    parser.add_argument("--debug", action="store_true", help="debug logging; tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    console.configure(quiet=args.quiet, debug=args.debug)
    try:
        return int(args.func(args) or 0)
    except VcpredError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so plainly, traceback under --debug
        if args.debug:
            traceback.print_exc()
        print(f"internal error (a bug in vcpred, please report it): {type(exc).__name__}: {exc}\n"
              "rerun with --debug for the traceback", file=sys.stderr)
        return 1


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
