"""`vcpred annotate MANIFEST [--host 127.0.0.1] [--port 8000]`: place the ROIs of a cohort in the
viewer, patient by patient, without a model (docs/annotate.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vcpred import console
from vcpred.errors import ConfigError
from vcpred.serve.settings import ServeSettings


ANNOTATE_EXPOSES = ("see every patient's images of the cohort and rewrite the manifest's ROI cells (this session "
                    "saves into the manifest)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "annotate", help="place each patient's ROI in the viewer; saves into the manifest",
        description="Open the local viewer over a cohort manifest, patient by patient: scroll to the fractured "
                    "vertebra, draw (or type) the ROI box, save, go to the next patient. Each save rewrites only "
                    "that patient's roi_* cells, atomically, after keeping the original as MANIFEST.bak. No model "
                    "is needed. See docs/annotate.md.")
    parser.add_argument("manifest", help="the cohort manifest (CSV) whose ROI columns to fill")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.set_defaults(func=run_annotate)


def run_annotate(args: argparse.Namespace) -> int:
    from vcpred.serve import listen
    from vcpred.serve.access import new_token, page_url
    from vcpred.serve.annotate_app import create_annotate_app
    from vcpred.serve.annotate_session import AnnotateSession, annotation_lock
    from vcpred.serve.command import warn_if_exposed

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} must be 1 to 65535")
    manifest = Path(args.manifest)
    session = AnnotateSession.open(manifest)  # an unreadable manifest: error, exit 2, before the lock
    with annotation_lock(manifest), listen.listening_socket(args.host, args.port) as sock:
        settings = ServeSettings(host=args.host, port=args.port, token=new_token(args.host))
        app = create_annotate_app(session, settings)
        warn_if_exposed(args.host, args.port, ANNOTATE_EXPOSES, "annotate")
        console.say(f"vcpred annotate {manifest}: {session.progress_text()}; open {page_url(settings)} "
                    "(Ctrl+C stops it; every save is already in the manifest)")
        listen.run_server(app, sock)
    return 0
