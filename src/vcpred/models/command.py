"""`vcpred weights list | fetch | import`."""

from __future__ import annotations

import argparse

from vcpred import console
from vcpred.errors import ConfigError
from vcpred.models import hub
from vcpred.models.registry import BACKBONES
from vcpred.models.weights import WEIGHTS_DESCRIPTIONS, stored_records, weights_home


def register(subparsers: argparse._SubParsersAction) -> None:
    weights = subparsers.add_parser("weights", help="list, download or import pre-trained weights")
    actions = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="known weights and what is installed").set_defaults(func=run_list)
    fetch = actions.add_parser("fetch", help="download weights (needs internet)")
    fetch.add_argument("name", choices=["biomedclip", "imagenet"])
    fetch.add_argument("--backbone", help="backbone for imagenet weights (e.g. resnet50)")
    fetch.set_defaults(func=run_fetch)
    imp = actions.add_parser("import", help="import weights from a local file or folder (air-gapped)")
    imp.add_argument("name", choices=["biomedclip", "imagenet"])
    imp.add_argument("path")
    imp.add_argument("--backbone", help="backbone for imagenet weights (e.g. resnet50)")
    imp.set_defaults(func=run_import)


def run_list(args: argparse.Namespace) -> int:
    console.say("weights:")
    for name, text in WEIGHTS_DESCRIPTIONS.items():
        console.say(f"  {name:<11} {text}")
    console.say(f"installed in {weights_home()}:")
    records = stored_records()
    for record in records:
        console.say(f"  {record}" if isinstance(record, str) else
                    f"  {record.name:<11} {record.backbone:<24} sha256 {record.sha256[:12]}…  {record.source}")
    if not records:
        console.say("  (none; efficientnet_lite0 ImageNet weights ship with the package and need no install)")
    console.say("backbones: " + ", ".join(n for n, b in BACKBONES.items() if not b.test_variant))
    return 0


def _backbone(args: argparse.Namespace) -> str:
    if args.name == "biomedclip":
        return args.backbone or "vit_base_patch16_224"
    if not args.backbone:
        raise ConfigError("imagenet weights need --backbone (e.g. --backbone resnet50)")
    return args.backbone


def run_fetch(args: argparse.Namespace) -> int:
    if args.name == "biomedclip":
        folder = hub.fetch_biomedclip(backbone=_backbone(args))
    else:
        folder = hub.fetch_imagenet(backbone=_backbone(args))
    console.say(f"stored {args.name} weights in {folder}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    if args.name == "biomedclip":
        folder = hub.import_biomedclip(args.path, backbone=_backbone(args))
    else:
        folder = hub.import_imagenet(args.path, backbone=_backbone(args))
    console.say(f"stored {args.name} weights in {folder}")
    return 0
