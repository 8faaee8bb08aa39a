"""The prepared store: one .npz per patient, provenance JSON, and index.json.

STORE/
  index.json                 format marker, version, params, one entry per patient (status, the
                             sha256 of its npz, the params it was made with, input hashes, the
                             sha256 of its frames' pixels alone (frames_sha256), error)
  patients/<id>.npz          arrays of PreparedPatient (loads with allow_pickle=False)
  provenance/<id>.json       what was read and applied, step by step
  qc/<id>.png, qc.html       the QC sheet: each patient's main slice with ROI and crop, its frames,
                             its warnings (vcpred.imaging.qc; for people, never read back)
  .vcpred-store.lock         held by the one `vcpred prepare` writing the store (vcpred.locking)
Every file is written to a temporary name in the same folder and renamed, so a crash never leaves
a half-written file under its real name.

Readers trust nothing: `load_prepared` reads a patient's npz only when its index entry is `ok`,
was made with the index's params, and the file's bytes have the recorded sha256; the patient id
inside the file must be the one asked for. Any failure is a StoreError naming the patient and
saying to run `vcpred prepare` again (which re-prepares damaged and stale files).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import numpy as np

from vcpred.cohort.manifest import PatientRecord
from vcpred.errors import VcpredError
from vcpred.hashing import atomic_write, sha256_file
from vcpred.imaging.pipeline import PreparedPatient, PrepareParams
from vcpred.output_folder import check

STORE_FORMAT = "vcpred-prepared-store"
# 2: entries record the sha256 and params of their npz (version 1 stores are prepared again).
STORE_VERSION = 2
INDEX = "index.json"
LOCK = ".vcpred-store.lock"
# Bump when the preparation code changes what it writes, so old stores are re-prepared.
PIPELINE_VERSION = 1
MAX_NAME = 120  # longer encoded ids become a prefix + hash (file systems allow 255 bytes per name)


class StoreError(VcpredError):
    """A prepared patient cannot be trusted: missing, failed, stale, damaged or another patient's."""


def safe_name(patient_id: str) -> str:
    """A file name for a patient id (percent-encodes anything but letters, digits, - . _ ~).

    An encoded id longer than MAX_NAME becomes its first 80 characters, '%~' and 32 hex digits of
    its sha256: '%~' never occurs in an encoded id (quote writes '%' before two hex digits only), so
    no two ids share a name and a long id no longer fails with 'File name too long'."""
    name = quote(patient_id, safe="-_") or "_"
    if len(name) <= MAX_NAME:
        return name
    return f"{name[:80]}%~{hashlib.sha256(patient_id.encode()).hexdigest()[:32]}"


def npz_path(store: Path, patient_id: str) -> Path:
    return Path(store) / "patients" / f"{safe_name(patient_id)}.npz"


def provenance_path(store: Path, patient_id: str) -> Path:
    return Path(store) / "provenance" / f"{safe_name(patient_id)}.json"


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n"))


def _three(values: np.ndarray) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


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
    if not (store.is_dir() and {p.name for p in store.iterdir()} <= {LOCK}):  # a new store being locked
        check(store, kind="store")  # a file or a non-empty folder that is not a store: OutputError
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VcpredError(f"cannot create the store folder {store}: {exc.strerror or exc}; choose a folder you "
                          "can write to") from None
    return {"format": STORE_FORMAT, "version": STORE_VERSION, "params": None, "patients": {}}


def store_lock(store: Path):
    """The store's writer lock (held for a whole `vcpred prepare`); Busy at once when another has it."""
    from vcpred.locking import held

    store = Path(store)
    return held(store / LOCK, f"the prepared store {store}",
                " (another vcpred prepare is writing it); wait for it to finish, or prepare into another folder")


def save_index(store: Path, index: dict) -> None:
    """Write the whole index (a new store, or tests); `prepare` uses update_index."""
    write_json(Path(store) / INDEX, index)


def _disk_index(store: Path) -> dict | None:
    try:
        index = json.loads((Path(store) / INDEX).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return index if isinstance(index, dict) and index.get("format") == STORE_FORMAT else None


def update_index(store: Path, params: dict | None, entries: dict[str, dict]) -> dict:
    """Write `entries` and `params` over the index on disk (never over a stale copy of it): the
    other entries are kept as they are on disk. Call under store_lock. Returns the new index."""
    index = _disk_index(store) or {"format": STORE_FORMAT, "patients": {}}
    index.update(format=STORE_FORMAT, version=STORE_VERSION, params=params)
    index.setdefault("patients", {}).update(entries)
    save_index(store, index)
    return index


def ok_entry(store: Path, patient_id: str, params: dict | None, **extra) -> dict:
    """The index entry of a patient whose npz was just written: its sha256 and the params it was made with."""
    path = npz_path(store, patient_id)
    return {**extra, "status": "ok", "file": str(path.relative_to(store)), "sha256": sha256_file(path),
            "params": params}


def record_prepared(store: Path, patient_id: str) -> None:
    """Index a patient's npz written with write_prepared by a single writer (tests, tools): made with
    the index's params, with its sha256. `vcpred prepare` indexes its own files."""
    index = _disk_index(store)
    if index is None:
        raise StoreError(f"{store} is not a prepared store (no readable index.json)")
    update_index(store, index.get("params"), {patient_id: ok_entry(Path(store), patient_id, index.get("params"))})


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
    """Hash of what decides a patient's output besides the image bytes: ROI, series, parameters, code version."""
    data = {"roi": [record.roi.slice, *record.roi.box], "params": params.to_dict(), "pipeline": PIPELINE_VERSION}
    if record.series:  # the manifest's per-patient series choice (absent: keys of earlier stores unchanged)
        data["series"] = dict(sorted(record.series.items()))
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


def frames_digest(frames: np.ndarray) -> str:
    """The sha256 of a patient's prepared frames: their dtype, shape and pixel values, nothing of the
    patient id, provenance or file, so that the same pixels under two ids give one digest."""
    array = np.ascontiguousarray(frames)
    digest = hashlib.sha256(f"{array.dtype.str} {array.shape}\n".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def write_prepared(store: Path, prepared: PreparedPatient) -> Path:
    """Atomically write the patient's npz and provenance JSON; returns the npz path."""
    path = npz_path(store, prepared.patient_id)
    arrays: dict[str, np.ndarray] = {
        "frames": prepared.frames, "frame_offsets": prepared.frame_offsets,
        "frame_slices": prepared.frame_slices, "crop_box": prepared.crop_box, "roi_box": prepared.roi_box,
        "frame_boxes": prepared.frame_boxes,
        "roi_slice": np.asarray(prepared.roi_slice, dtype=np.int32), "main_slice": prepared.main_slice,
        "spacing": np.asarray(prepared.spacing, dtype=np.float64),
        "channels": np.asarray(prepared.channels, dtype=str), "patient_id": np.asarray(prepared.patient_id),
        "provenance": np.asarray(json.dumps(prepared.provenance, default=_json_default)),
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a file object keeps numpy from appending ".npz"
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy types **kwds as allow_pickle too

    atomic_write(path, write)
    write_json(provenance_path(store, prepared.patient_id), prepared.provenance)
    return path


def remove_prepared(store: Path, patient_id: str) -> None:
    """Delete a patient's npz and provenance from the store (our own files only)."""
    for path in (npz_path(store, patient_id), provenance_path(store, patient_id)):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # the index entry says failed: readers refuse the patient whatever file is left


_index_cache: dict[str, tuple[tuple, dict]] = {}


def read_index(store: str | Path) -> dict:
    """The store's index for readers (re-read whenever index.json changes); StoreError when there is
    no store or it was prepared by an earlier vcpred."""
    store = Path(store)
    path = store / INDEX
    try:
        stat = path.stat()
    except OSError:
        raise StoreError(f"{store} is not a prepared store (no index.json); run `vcpred prepare MANIFEST "
                         f"--out {store}` first") from None
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _index_cache.get(str(path.absolute()))
    if cached and cached[0] == key:
        return cached[1]
    index = _disk_index(store)
    if index is None:
        raise StoreError(f"{path} is not a readable vcpred store index; run `vcpred prepare` again")
    if not isinstance(index.get("version"), int) or index["version"] < STORE_VERSION:
        raise StoreError(f"the store {store} was prepared by an earlier vcpred (no content hashes); run "
                         "`vcpred prepare MANIFEST --out STORE` again with this version")
    _index_cache[str(path.absolute())] = (key, index)
    return index


def store_params(store: str | Path) -> dict:
    """The preparation parameters the store records, read through its checked index (StoreError when
    there is no current store or it records none)."""
    params = read_index(store).get("params")
    if not params:
        raise StoreError(f"{Path(store) / INDEX} records no preparation params; run `vcpred prepare` again")
    return params


def _describe(params: dict | None, other: dict | None) -> str:
    """The parameters that differ, e.g. 'size 64 (the store: 96)'."""
    params, other = params or {}, other or {}
    keys = sorted(k for k in set(params) | set(other) if params.get(k) != other.get(k))
    return ", ".join(f"{k} {params.get(k)!r} (the store: {other.get(k)!r})" for k in keys[:4]) or "unknown"


def stale_reason(made_with: dict | None, params: dict | None) -> str:
    """Why an entry made with `made_with` does not fit a store of `params`."""
    return f"prepared with other parameters than the store records: {_describe(made_with, params)}"


def _checked_entry(store: Path, patient_id: str) -> tuple[dict, dict, Path]:
    """(index, entry, npz path) of a patient readers may use; StoreError saying why not otherwise."""
    index = read_index(store)
    entry = index.get("patients", {}).get(patient_id)
    again = f"run `vcpred prepare MANIFEST --out {store}` again"
    path = npz_path(store, patient_id)
    if not isinstance(entry, dict):
        raise StoreError(f"patient {patient_id!r} is not in the prepared store {store}; run `vcpred prepare` "
                         "for this manifest first")
    if entry.get("status") == "failed":
        raise StoreError(f"patient {patient_id!r} failed in the last `vcpred prepare` into {store}: "
                         f"{entry.get('error')}; fix it and {again}")
    if entry.get("status") == "stale" or entry.get("params") != index.get("params"):
        why = entry.get("stale") or stale_reason(entry.get("params"), index.get("params"))
        raise StoreError(f"patient {patient_id!r} in {store} was {why} (a `vcpred prepare` with new parameters "
                         f"did not finish); {again}")
    if entry.get("status") != "ok" or not entry.get("sha256"):
        raise StoreError(f"patient {patient_id!r} in {store} is not prepared ({entry.get('status')!r}); {again}")
    if not path.is_file():
        raise StoreError(f"patient {patient_id!r}: {path} is missing from the store; {again}")
    return index, entry, path


def _verified_bytes(store: Path, patient_id: str) -> tuple[bytes, dict, dict]:
    """The npz bytes of a patient, checked against the sha256 its index entry records."""
    index, entry, path = _checked_entry(Path(store), patient_id)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"patient {patient_id!r}: cannot read {path} ({exc.strerror or exc})") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise StoreError(f"patient {patient_id!r}: {path} is damaged or was changed since `vcpred prepare` wrote it "
                         f"(its sha256 differs from index.json); run `vcpred prepare MANIFEST --out {store}` again: "
                         "it prepares such files again")
    return data, entry, index


@contextmanager
def _opened(data: bytes, path: Path, patient_id: str) -> Iterator[np.lib.npyio.NpzFile]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            found = str(npz["patient_id"])
            if found != patient_id:
                raise StoreError(f"patient {patient_id!r}: {path} holds patient {found!r}; it was copied over "
                                 "this patient's file: run `vcpred prepare` again")
            yield npz
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as exc:
        raise StoreError(f"patient {patient_id!r}: {path} is not a readable prepared file ({exc}); run "
                         "`vcpred prepare` again") from None


def verified_sha256(store: str | Path, patient_id: str) -> str:
    """The sha256 of the patient's npz, after checking that the file has it (for cache keys)."""
    return _verified_bytes(Path(store), patient_id)[1]["sha256"]


def prepared_offsets(store: str | Path, patient_id: str) -> np.ndarray:
    """The patient's frame offsets (checked like load_prepared) without building its frames."""
    store = Path(store)
    cached = _cached_prepared(store, patient_id)
    if cached is not None:
        return cached.frame_offsets.copy()
    data, _, _ = _verified_bytes(store, patient_id)
    with _opened(data, npz_path(store, patient_id), patient_id) as npz:
        return npz["frame_offsets"]


# Patients read and verified by this process, by npz path: (file identity, sha256, the patient, the
# bytes of its arrays). An experiment's worker trains run after run on the same store; parsing each npz
# again took 3 s of a CPU for 245 patients per run. A file whose identity (inode, size, mtime) or
# recorded sha256 changed is read and verified again; its arrays are read-only, so no caller can
# change the copy. The least recently used go first beyond PREPARED_CACHE_BYTES.
_prepared_cache: OrderedDict[str, tuple[tuple, str, PreparedPatient, int]] = OrderedDict()
_prepared_cache_bytes = 0
PREPARED_CACHE_BYTES = 1 << 30


def _file_identity(path: Path) -> tuple | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _cached_prepared(store: Path, patient_id: str) -> PreparedPatient | None:
    index, entry, path = _checked_entry(store, patient_id)  # the index's verdict is checked every time
    cached = _prepared_cache.get(str(path.absolute()))
    if cached is None or cached[0] != _file_identity(path) or cached[1] != entry["sha256"]:
        return None
    _prepared_cache.move_to_end(str(path.absolute()))
    return replace(cached[2], provenance=copy.deepcopy(cached[2].provenance))


def _keep_prepared(path: Path, identity: tuple | None, sha256: str, prepared: PreparedPatient) -> None:
    global _prepared_cache_bytes
    if identity is None:
        return
    arrays = [value for value in vars(prepared).values() if isinstance(value, np.ndarray)]
    for array in arrays:
        array.setflags(write=False)
    size = sum(int(array.nbytes) for array in arrays)
    replaced = _prepared_cache.pop(str(path.absolute()), None)
    _prepared_cache[str(path.absolute())] = (identity, sha256, replace(prepared), size)
    _prepared_cache_bytes += size - (replaced[3] if replaced else 0)
    while _prepared_cache_bytes > PREPARED_CACHE_BYTES:
        _prepared_cache_bytes -= _prepared_cache.popitem(last=False)[1][3]


def load_prepared(store: str | Path, patient_id: str) -> PreparedPatient:
    """Read one prepared patient back (no pickle), verified: StoreError naming the patient when its
    file is missing, failed, stale, damaged or another patient's."""
    store = Path(store)
    cached = _cached_prepared(store, patient_id)
    if cached is not None:
        return cached
    path = npz_path(store, patient_id)
    identity = _file_identity(path)  # before reading: a change while it is read makes the next read miss
    data, entry, index = _verified_bytes(store, patient_id)
    with _opened(data, path, patient_id) as npz:
        provenance = json.loads(str(npz["provenance"]))
        prepared = PreparedPatient(
            patient_id=str(npz["patient_id"]), frames=npz["frames"], frame_offsets=npz["frame_offsets"],
            frame_slices=npz["frame_slices"], crop_box=npz["crop_box"], roi_box=npz["roi_box"],
            roi_slice=int(npz["roi_slice"]), main_slice=npz["main_slice"],
            spacing=_three(npz["spacing"]), channels=[str(c) for c in npz["channels"]],
            provenance=provenance)
    made_with = provenance.get("params") if isinstance(provenance, dict) else None
    if made_with is not None and made_with != index.get("params"):
        raise StoreError(f"patient {patient_id!r}: {path} was made with other preparation parameters "
                         f"({_describe(made_with, index.get('params'))}); run `vcpred prepare` again")
    _keep_prepared(path, identity, entry["sha256"], prepared)
    return replace(prepared, provenance=copy.deepcopy(prepared.provenance))


def store_digest(store: str | Path, patient_ids: list[str]) -> str:
    """sha256 over the store's params and the recorded sha256 (or status) of each patient's file:
    what a run trained on, from the index alone (files are verified when they are read)."""
    index = read_index(store)
    patients = index.get("patients", {})
    rows = []
    for pid in sorted(set(patient_ids)):
        entry = patients.get(pid) or {}
        rows.append([pid, entry.get("sha256") if entry.get("status") == "ok" else entry.get("status", "missing")])
    payload = json.dumps({"params": index.get("params"), "patients": rows}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
