"""`vcpred serve --model MODEL_DIR [--host 127.0.0.1] [--port 8000] [--data-dir FOLDER]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from vcpred import console
from vcpred.errors import ConfigError
from vcpred.serve import listen
from vcpred.serve.access import is_loopback, new_token, page_url
from vcpred.serve.listen import listening_socket
from vcpred.serve.settings import ServeSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="local web viewer: load an MRI, draw the ROI, see the risk",
        description="A local web page: upload a zipped sagittal DICOM series or a NIfTI file, draw the box "
                    "around the fractured vertebral body, type the clinical values and see the collapse risk "
                    "with its spread over the split models and the heat map. Research use only, not a "
                    "medical device. See docs/serve.md.")
    parser.add_argument("--model", required=True, help="model directory written by `vcpred export`")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--precision", default="auto", choices=("fp32", "bf16", "auto"),
                        help="CPU inference precision, as `vcpred predict --precision` (default auto)")
    parser.add_argument("--data-dir", help="local folder whose DICOM folders, zips and NIfTI files the page may open")
    parser.add_argument("--max-upload-mb", type=float, default=512, help="largest upload accepted (default 512)")
    parser.add_argument("--max-unpacked-mb", type=float, default=2048,
                        help="most a zip or .nii.gz may expand to (default 2048)")
    parser.add_argument("--study-timeout", type=float, default=30,
                        help="minutes after which an idle study and its files are deleted (default 30)")
    parser.add_argument("--max-studies", type=int, default=8,
                        help="studies open at once; a new one closes the least recently used idle one (default 8)")
    parser.add_argument("--max-megavoxels", type=float, default=64,
                        help="largest volume read, in Mi voxels (2^20), judged from its header (default 64: "
                             "1024 x 1024 x 64); at most 2048 voxels a side")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another name (or address) this computer is reached by, for the Host check "
                             "(127.0.0.1, localhost, ::1 and --host are always allowed); repeatable")
    parser.set_defaults(func=run_serve)


def settings_from(args: argparse.Namespace) -> ServeSettings:
    data_dir = Path(args.data_dir) if args.data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir} is not a folder")
    for flag, value in (("--max-upload-mb", args.max_upload_mb), ("--max-unpacked-mb", args.max_unpacked_mb),
                        ("--study-timeout", args.study_timeout), ("--max-studies", args.max_studies),
                        ("--max-megavoxels", args.max_megavoxels)):
        if not value > 0:
            raise ConfigError(f"{flag} must be more than 0, got {value}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} must be 1 to 65535")
    for name in args.allow_host:
        if not name.strip() or any(c in name for c in "/ @?#"):
            raise ConfigError(f"--allow-host {name!r} must be a host name or address, without scheme, port or path")
    return ServeSettings(max_upload_mb=args.max_upload_mb, max_unpacked_mb=args.max_unpacked_mb,
                         study_timeout_s=60 * args.study_timeout, max_studies=args.max_studies,
                         max_voxels=int(args.max_megavoxels * 2**20), host=args.host, port=args.port,
                         allow_hosts=tuple(args.allow_host), data_dir=data_dir, token=new_token(args.host))


SERVE_EXPOSES = "upload images and see predictions (and open the --data-dir folder's studies)"


def warn_if_exposed(host: str, port: int, exposes: str = SERVE_EXPOSES, command: str = "serve") -> bool:
    """Say loudly when other computers can reach the page (there is no login and no TLS, only the
    token in the printed address)."""
    if is_loopback(host):
        return False
    console.warn("!" * 78)
    console.warn(f"vcpred {command} listens on {host}:{port}: OTHER COMPUTERS CAN REACH THIS PAGE. It has no login "
                 f"and no encryption: anyone who has the address printed below (it holds a random access token; "
                 f"the traffic is not encrypted, so anyone on the network path can read it) can {exposes}. Use "
                 "--host 127.0.0.1 unless this network is trusted. Requests without the token are refused.")
    console.warn("!" * 78)
    return True


def run_serve(args: argparse.Namespace) -> int:
    from vcpred.cohort.provenance import SYNTHETIC_WARNING
    from vcpred.bundle.files import check_in_background

    settings = settings_from(args)
    with listening_socket(args.host, args.port) as sock:  # a taken port: one error line, before the model loads
        console.say(f"loading model {args.model} ...")
        checked = check_in_background(args.model)  # the files' sha256 while torch and timm are imported
        from vcpred.predict.bundle import load_bundle
        from vcpred.serve.app import create_app

        bundle = load_bundle(args.model, precision=args.precision, checked=checked)
        if bundle.kind == "image":
            console.say(f"precision {bundle.precision} ({bundle.precision_reason})")
        app = create_app(bundle, settings)
        if bundle.synthetic:  # the page says it too (/api/model `warning`)
            console.warn(f"model {bundle.meta.model_id}: {SYNTHETIC_WARNING}")
        warn_if_exposed(args.host, args.port)
        console.say(f"vcpred serve: open {page_url(settings)} (Ctrl+C stops it and deletes every study). "
                    "Research use only, not a medical device.")
        listen.run_server(app, sock)
    return 0
