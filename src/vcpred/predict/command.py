"""`vcpred predict --model MODEL_DIR (--image-t2 PATH ... | --manifest M) --out OUT`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from vcpred import console
from vcpred.errors import ConfigError, VcpredError
from vcpred.predict.risk import risk_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict collapse for new patients with an exported model",
        description="Probability of vertebral collapse with its spread over split models, the risk category "
                    "and a heat map, for one patient (images + ROI + clinical values) or every patient of a "
                    "manifest. Research use only, not a medical device. See docs/predict.md.")
    parser.add_argument("--model", required=True, help="model directory written by `vcpred export`")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--manifest", help="predict every patient of this manifest instead of one patient")
    parser.add_argument("--image-t2", help="T2 series: DICOM folder, zip or file, or NIfTI file")
    parser.add_argument("--image-t1", help="T1 series, for models trained with T1")
    parser.add_argument("--series", action="append", default=[], metavar="SEQUENCE=CHOICE",
                        help="choose the series in a DICOM folder or zip holding several by its UID, DATE#N "
                             "reference, description or words in any order, e.g. t2='t2 sag' (repeatable; "
                             "with --manifest use its series_<sequence> column)")
    parser.add_argument("--roi-slice", type=int, help="sagittal slice through the fractured vertebra (0-based)")
    parser.add_argument("--roi-box", help="r0,c0,r1,c1 box around the vertebral body on that slice")
    parser.add_argument("--clinical", help="clinical values NAME=VALUE,..., e.g. age=74,sex=F")
    parser.add_argument("--patient-id", default="patient", help="name shown in the outputs")
    parser.add_argument("--level", help="vertebral level of the fracture, e.g. L1 (optional): written into "
                                        "prediction.json, the report, the heat-map title and the Secondary Capture")
    parser.add_argument("--allow-missing", action="store_true",
                        help="impute missing clinical values with the training medians (and say so)")
    parser.add_argument("--precision", default="auto", choices=("fp32", "bf16", "auto"),
                        help="CPU inference precision; auto (default): bf16 where the CPU computes it natively and "
                             "the model directory's bf16 check passed at export, else fp32 (docs/predict.md)")
    parser.add_argument("--dicom-sc", action="store_true",
                        help="also write the heat map as a DICOM Secondary Capture (OUT/heatmap_sc.dcm)")
    parser.add_argument("--force", action="store_true",
                        help="accepted for scripts: an earlier `vcpred predict` output in --out is replaced anyway, "
                             "and a folder predict did not write is never written into")
    parser.set_defaults(func=run_predict, exit_at_once=True)  # vcpred.cli.run: no interpreter teardown


def _one_patient_record(args: argparse.Namespace, needs_image: bool):
    from vcpred.imaging.command import parse_series
    from vcpred.predict.inputs import make_record, parse_box, parse_clinical, parse_level

    images = {name: Path(p) for name, p in (("t2", args.image_t2), ("t1", args.image_t1)) if p}
    if needs_image:
        missing = [flag for flag, value in (("--image-t2 (or --image-t1)", images), ("--roi-slice", args.roi_slice),
                                            ("--roi-box", args.roi_box)) if value in (None, {})]
        if missing:
            raise ConfigError(f"one-patient prediction needs {', '.join(missing)} (or pass --manifest)")
        box, roi_slice = parse_box(args.roi_box), args.roi_slice
    else:
        box, roi_slice = (0, 0, 1, 1), 0  # clinical-only models read no image
    record = make_record(images, roi_slice, box, parse_clinical(args.clinical), patient_id=args.patient_id,
                         level=parse_level(args.level))
    return replace(record, series=dict(parse_series(args.series)))


def prepare_in_background(record, params: dict):
    """A Future of the patient's PreparedPatient (or of the error preparing it raised), made in a
    thread: SimpleITK and numpy only, no torch."""
    from vcpred.imaging import PrepareParams, prepare_patient
    from vcpred.workers import start_in_thread

    # the parameters are read in the thread too: a bad bundle.json is load_bundle's to report
    return start_in_thread("prepare", lambda: prepare_patient(record, PrepareParams.from_dict(params)))


def run_predict(args: argparse.Namespace) -> int:
    from vcpred.cohort.provenance import SYNTHETIC_WARNING
    from vcpred.output_folder import check, replacing
    from vcpred.bundle.files import check_in_background, read_meta

    if args.manifest and (args.image_t2 or args.image_t1 or args.roi_box):
        raise ConfigError("give either --manifest or one patient's --image-t2/--roi-slice/--roi-box, not both")
    if args.manifest and args.level:
        raise ConfigError("--level is one patient's; with --manifest give each patient's in its level column")
    if args.manifest and args.series:
        raise ConfigError("--series chooses one patient's series; with --manifest give each patient's in its "
                          "series_<sequence> column (docs/manifest.md)")
    out = Path(args.out)
    check(out, kind="prediction", force=args.force)  # fail before the work, not after
    raw = read_meta(Path(args.model))  # its kind and preprocessing; every file is verified below
    image, params = raw.get("kind") == "image", raw.get("prepare_params")
    record = None if args.manifest else _one_patient_record(args, image)
    # Before torch and timm are imported (seconds): the files' sha256 and the patient's image
    # (read, N4, crop) start in threads, so that work overlaps the imports.
    checked = check_in_background(args.model)
    prepared = prepare_in_background(record, params) if record is not None and isinstance(params, dict) else None
    from vcpred.predict.bundle import load_bundle
    from vcpred.predict.outputs import manifest_counts, predict_manifest, write_patient
    from vcpred.predict.predict import predict_patient

    bundle = load_bundle(args.model, precision=args.precision, checked=checked)
    if bundle.meta.prepare_params != params:  # bundle.json changed under us: prepare again
        prepared = None
    if bundle.kind == "image":
        console.say(f"model {bundle.meta.model_id}: precision {bundle.precision} ({bundle.precision_reason})")
    if bundle.synthetic:
        console.warn(f"model {bundle.meta.model_id}: {SYNTHETIC_WARNING}")
    # The outputs are written beside OUT and replace an earlier prediction only when complete.
    if args.manifest:
        with replacing(out, kind="prediction", force=args.force) as folder:
            table = predict_manifest(bundle, args.manifest, folder, allow_missing=args.allow_missing)
            predicted, failed, excluded = manifest_counts(table)
            apart = f", {excluded} excluded in the manifest" if excluded else ""
            if not predicted:
                raise VcpredError(f"none of the {failed} patient(s) of {args.manifest} could be predicted (reasons "
                                  f"above{apart}); {out} was left as it was")
        console.say(f"wrote {out / 'predictions.csv'}: {predicted} predicted, {failed} failed{apart}")
        return 0
    prediction = predict_patient(bundle, record, allow_missing=args.allow_missing,
                                 prepared=None if prepared is None else prepared.result)
    with replacing(out, kind="prediction", force=args.force) as folder:
        write_patient(folder, prediction, dicom=args.dicom_sc)
    console.say(prediction_line(prediction.result))
    console.say(f"wrote {out}")
    return 0


def prediction_line(r: dict) -> str:
    """The console's summary of one prediction, the risk worded as in every output (vcpred.predict.risk)."""
    return (f"{r['patient_id']}: probability of collapse {r['probability']:.3f} (SD {r['sd']:.3f}, models "
            f"{r['interval']['low']:.3f}-{r['interval']['high']:.3f}); {risk_text(r)} (threshold {r['threshold']:.3f})."
            f" {r['notice'].capitalize()}.")
