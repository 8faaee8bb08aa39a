"""The prepared store: one .npz per patient, provenance JSON, and index.json.

STORE/
  index.json                 format marker, params, one entry per patient (status, hashes, error)
  patients/<id>.npz          arrays of PreparedPatient (loads with allow_pickle=False)
  provenance/<id>.json       what was read and applied, step by step
Every file is written to a temporary name in the same folder and renamed, so a crash never leaves
a half-written file under its real name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import numpy as np

from vcpred.cohort.manifest import PatientRecord
from vcpred.errors import VcpredError
from vcpred.hashing import atomic_write
from vcpred.imaging.pipeline import PreparedPatient, PrepareParams
from vcpred.output_folder import check

STORE_FORMAT = "vcpred-prepared-store"
STORE_VERSION = 1
INDEX = "index.json"
# Bump when the preparation code changes what it writes, so old stores are re-prepared.
PIPELINE_VERSION = 1


def safe_name(patient_id: str) -> str:
    """A file name for a patient id (percent-encodes anything but letters, digits, - and _)."""
    return quote(patient_id, safe="-_") or "_"


def npz_path(store: Path, patient_id: str) -> Path:
    return Path(store) / "patients" / f"{safe_name(patient_id)}.npz"


def provenance_path(store: Path, patient_id: str) -> Path:
    return Path(store) / "provenance" / f"{safe_name(patient_id)}.json"


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n"))


def _json_default(value: object) -> object:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def open_store(store: Path) -> dict:
    """The store's index, creating an empty store; refuses a folder that is not a vcpred store.

    The store is incremental (written patient by patient, each file atomically), so the output-folder
    guard only checks it: a new or empty folder, or a vcpred store; any other folder is refused and
    nothing in it is touched."""
    store = Path(store)
    index_file = store / INDEX
    if index_file.is_file() and store.is_dir():
        try:
            index = json.loads(index_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise VcpredError(f"{index_file} is not readable JSON ({exc}); "
                              "delete the store and prepare again") from None
        if isinstance(index, dict) and index.get("format") == STORE_FORMAT:
            return index
    check(store, kind="store")  # a file or a non-empty folder that is not a store: OutputError
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VcpredError(f"cannot create the store folder {store}: {exc.strerror or exc}; choose a folder you "
                          "can write to") from None
    return {"format": STORE_FORMAT, "version": STORE_VERSION, "params": None, "patients": {}}


def save_index(store: Path, index: dict) -> None:
    write_json(Path(store) / INDEX, index)


def input_files(record: PatientRecord, sequences: list[str]) -> list[Path]:
    """Every file the patient's preparation reads (a DICOM folder contributes all its files)."""
    files = []
    for name in sequences:
        path = Path(record.images[name])
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def fingerprint(files: list[Path]) -> list[list]:
    """Cheap stat fingerprint: (path, size, mtime in ns) per file; missing files -> size -1."""
    rows = []
    for path in files:
        try:
            st = path.stat()
            rows.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            rows.append([str(path), -1, 0])
    return rows


def patient_key(record: PatientRecord, params: PrepareParams) -> str:
    """Hash of what decides a patient's output besides the image bytes: ROI, parameters, code version."""
    data = {"roi": [record.roi.slice, *record.roi.box], "params": params.to_dict(), "pipeline": PIPELINE_VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def content_hash(files: list[Path], key: str) -> str:
    """SHA-256 over the patient key and every input file's name and bytes."""
    digest = hashlib.sha256(key.encode())
    for path in files:
        digest.update(str(path).encode() + b"\0")
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()


def write_prepared(store: Path, prepared: PreparedPatient) -> Path:
    """Atomically write the patient's npz and provenance JSON; returns the npz path."""
    path = npz_path(store, prepared.patient_id)
    arrays = {
        "frames": prepared.frames, "frame_offsets": prepared.frame_offsets,
        "frame_slices": prepared.frame_slices, "crop_box": prepared.crop_box, "roi_box": prepared.roi_box,
        "frame_boxes": prepared.frame_boxes,
        "roi_slice": np.int32(prepared.roi_slice), "main_slice": prepared.main_slice,
        "spacing": np.asarray(prepared.spacing, dtype=np.float64),
        "channels": np.asarray(prepared.channels, dtype=str), "patient_id": np.asarray(prepared.patient_id),
        "provenance": np.asarray(json.dumps(prepared.provenance, default=_json_default)),
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a file object keeps numpy from appending ".npz"
            np.savez(handle, **arrays)

    atomic_write(path, write)
    write_json(provenance_path(store, prepared.patient_id), prepared.provenance)
    return path


def remove_prepared(store: Path, patient_id: str) -> None:
    """Delete a patient's npz and provenance from the store (our own files only)."""
    npz_path(store, patient_id).unlink(missing_ok=True)
    provenance_path(store, patient_id).unlink(missing_ok=True)


def load_prepared(store: str | Path, patient_id: str) -> PreparedPatient:
    """Read one prepared patient back (no pickle)."""
    path = npz_path(Path(store), patient_id)
    if not path.is_file():
        raise VcpredError(f"patient {patient_id!r} is not in the prepared store {store} (no {path.name}); "
                          "run `vcpred prepare` for this manifest first")
    with np.load(path, allow_pickle=False) as data:
        return PreparedPatient(
            patient_id=str(data["patient_id"]), frames=data["frames"], frame_offsets=data["frame_offsets"],
            frame_slices=data["frame_slices"], crop_box=data["crop_box"], roi_box=data["roi_box"],
            roi_slice=int(data["roi_slice"]), main_slice=data["main_slice"],
            spacing=tuple(float(v) for v in data["spacing"]), channels=[str(c) for c in data["channels"]],
            provenance=json.loads(str(data["provenance"])))
