"""Prepare a whole cohort into a store: skip unchanged patients, run in parallel, never stop at one
failing patient.

Skip rule (like git's index): a patient is unchanged when its stat fingerprint (path, size, mtime
of every input file) and its key (ROI + parameters) equal the index entry; when only the
fingerprint differs, the SHA-256 of the input bytes decides, so touching or copying files costs a
re-hash, not a re-preparation. Its prepared npz must also still have the sha256 the index records
(a damaged or replaced file is prepared again, and said so).

After the run, the cohort's patients whose prepared frames are identical (the index entries'
`frames_sha256`: the pixels alone) are listed with their labels: the same image under two ids, which
`cohort check` does not see when the files differ (a series exported twice, a NIfTI beside its DICOM).

One `prepare` per store at a time (the store lock; a second one stops with an error). A change of
parameters first marks every entry made with other parameters `stale` (readers refuse those), so
an interrupted run never leaves an index that reads as consistent over files of mixed parameters.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path

from vcpred import console
from vcpred.cohort.manifest import Cohort, PatientRecord
from vcpred.errors import ConfigError, VcpredError
from vcpred.imaging.naming import series_record
from vcpred.imaging.pipeline import PrepareParams, chosen_sequences, prepare_patient
from vcpred.hashing import sha256_file
from vcpred.imaging.qc import qc_png_path, remove_qc_png, write_qc_png, write_qc_sheet
from vcpred.imaging.store import (
    content_hash,
    fingerprint,
    frames_digest,
    input_files,
    load_prepared,
    npz_path,
    ok_entry,
    open_store,
    patient_key,
    remove_prepared,
    stale_reason,
    store_lock,
    update_index,
    write_prepared,
)
from vcpred.os_errors import is_user_os_error
from vcpred.workers import worker_pool


INDEX_SAVE_INTERVAL_S = 2.0  # index.json is rewritten at most this often during a run, and at the end


@dataclass
class PrepareSummary:
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # patient id -> reason
    damaged: dict[str, str] = field(default_factory=dict)  # prepared again: its stored file was damaged
    seconds: float = 0.0
    qc_sheet: Path | None = None  # STORE/qc.html
    identical: list[list[PatientRecord]] = field(default_factory=list)  # patients with identical frames


@dataclass
class _Task:
    record: PatientRecord
    files: list[Path]
    fingerprint: list
    key: str


def _task(record: PatientRecord, params: PrepareParams) -> _Task:
    try:
        files = input_files(record, chosen_sequences(record, params))
    except VcpredError:
        files = []  # the worker reports the problem for this patient
    return _Task(record, files, fingerprint(files), patient_key(record, params))


def is_unchanged(task: _Task, entry: dict | None, store: Path, params: dict) -> bool | str:
    """True when the stored result is still valid for these inputs and parameters; False when it
    must be prepared again; a reason (str) when its stored file is damaged or missing."""
    if not entry or entry.get("status") not in ("ok", "stale") or entry.get("params") != params:
        return False
    if entry.get("key") != task.key or not entry.get("sha256"):
        return False
    if entry.get("fingerprint") != task.fingerprint:
        if content_hash(task.files, task.key) != entry.get("hash"):
            return False
        entry["fingerprint"] = task.fingerprint  # same bytes, new stat: remember the new stat
    path = npz_path(store, task.record.patient_id)
    try:
        if sha256_file(path) != entry["sha256"]:
            return f"{path.name} was damaged or changed since it was prepared (sha256 mismatch)"
    except OSError as exc:
        return f"{path.name} is missing or unreadable ({exc.strerror or exc})"
    entry.update(status="ok")
    entry.pop("stale", None)
    return True


def _work(task: _Task, params: PrepareParams, store: Path) -> dict:
    """Prepare and write one patient; never raises (the failure becomes the result)."""
    start = time.perf_counter()
    entry: dict = {"key": task.key, "fingerprint": task.fingerprint}
    try:
        entry["hash"] = content_hash(task.files, task.key)
        prepared = prepare_patient(task.record, params)
        write_prepared(store, prepared)
        write_qc_png(store, prepared)
        entry = ok_entry(store, task.record.patient_id, params.to_dict(), **entry,
                         frames=int(prepared.frames.shape[0]), frames_sha256=frames_digest(prepared.frames),
                         warnings=prepared.provenance["warnings"],
                         series=series_record(prepared.provenance, prepared.roi_slice))  # for the QC sheet
    except VcpredError as exc:
        entry.update(status="failed", error=str(exc))
    except OSError as exc:
        if is_user_os_error(exc):  # a full disk or missing permissions concern every patient: stop
            raise
        entry.update(status="failed", error=f"internal error (a bug in vcpred): {type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug must not cost the other patients their preparation
        entry.update(status="failed", error=f"internal error (a bug in vcpred): {type(exc).__name__}: {exc}")
    if entry.get("status") == "failed":  # an older result would no longer match the inputs
        entry["params"] = params.to_dict()
        remove_prepared(store, task.record.patient_id)
        remove_qc_png(store, task.record.patient_id)
    entry["seconds"] = round(time.perf_counter() - start, 3)
    return entry


def _init_worker(threads: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    console.configure(quiet=True)


def _results(tasks: list[_Task], params: PrepareParams, store: Path, jobs: int) -> Iterator[tuple[_Task, dict]]:
    """Yield (task, entry) as patients finish, serially or in `jobs` worker processes."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, _work(task, params, store)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn: a forked child could inherit ITK thread pools in a locked state.
    context = multiprocessing.get_context("spawn")
    with worker_pool(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(_work, task, params, store): task for task in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _check_sequences(cohort: Cohort, params: PrepareParams) -> None:
    unknown = [s for s in params.sequences or () if s not in cohort.sequences]
    if unknown:
        raise ConfigError(f"sequence(s) {', '.join(unknown)} not in the manifest (it has image columns for: "
                          f"{', '.join(cohort.sequences)}); check --sequences")


def _plan(cohort: Cohort, index: dict, store: Path, params: PrepareParams,
          force: bool) -> tuple[list[_Task], list[str], dict[str, str], dict[str, dict]]:
    """(patients to prepare, patients skipped as unchanged, damaged files to prepare again,
    entries of skipped patients that changed: a new stat fingerprint, stale -> ok)."""
    tasks, skipped, damaged, refreshed = [], [], {}, {}
    wanted = params.to_dict()
    for record in cohort.records:
        task = _task(record, params)
        entry = index["patients"].get(record.patient_id)
        before = dict(entry) if entry else None
        unchanged = False if force else is_unchanged(task, entry, store, wanted)
        if unchanged is True:
            skipped.append(record.patient_id)
            if entry != before:
                refreshed[record.patient_id] = entry
            continue
        if isinstance(unchanged, str):
            damaged[record.patient_id] = unchanged
        tasks.append(task)
    return tasks, skipped, damaged, refreshed


def _note(summary: PrepareSummary, pid: str, entry: dict, jobs: int) -> None:
    if jobs > 1:  # workers are quiet: their warnings are shown here
        for message in entry.get("warnings", []):
            console.warn(f"patient {pid!r}: {message}")
    if entry["status"] == "ok":
        summary.prepared.append(pid)
    else:
        summary.failed[pid] = entry["error"]


def _invalidate(index: dict, wanted: dict) -> dict[str, dict]:
    """Entries that readers must no longer use under `wanted` params, marked stale (files kept: a
    later run with their params may reuse them after checking their hash)."""
    stale = {}
    for pid, entry in index["patients"].items():
        if not isinstance(entry, dict) or entry.get("status") != "ok":
            continue
        if not entry.get("sha256") or entry.get("params") is None:
            stale[pid] = {**entry, "status": "stale", "stale": "prepared by an earlier vcpred (no content hash)"}
        elif entry["params"] != wanted:
            stale[pid] = {**entry, "status": "stale", "stale": stale_reason(entry["params"], wanted)}
    return stale


def prepare_cohort(cohort: Cohort, store: str | Path, params: PrepareParams, *, jobs: int = 1,
                   force: bool = False) -> PrepareSummary:
    """Prepare every patient of the cohort into store (see module docstring for the skip rule)."""
    start = time.perf_counter()
    _check_sequences(cohort, params)
    store = Path(store)
    open_store(store)  # refuses a folder that is not a store before anything is written into it
    with store_lock(store):
        index = open_store(store)  # read again under the lock
        wanted = params.to_dict()
        if index["params"] not in (None, wanted):
            console.say("preparation parameters changed since the last run: every patient is prepared again")
        # Written before any file changes: the new params, and every entry made otherwise marked stale.
        index = update_index(store, wanted, _invalidate(index, wanted))
        summary = PrepareSummary()
        tasks, summary.skipped, summary.damaged, refreshed = _plan(cohort, index, store, params, force)
        for pid, reason in summary.damaged.items():
            console.warn(f"patient {pid!r}: {reason}; preparing it again")
        pending = dict(refreshed)
        update_index(store, wanted, pending)
        pending.clear()
        last_save = time.monotonic()
        try:
            for task, entry in console.progress(_results(tasks, params, store, jobs), total=len(tasks),
                                                desc="prepare"):
                pending[task.record.patient_id] = entry
                _note(summary, task.record.patient_id, entry, jobs)
                if time.monotonic() - last_save > INDEX_SAVE_INTERVAL_S:  # an interrupted run loses little
                    update_index(store, wanted, pending)
                    pending.clear()
                    last_save = time.monotonic()
        finally:
            index = update_index(store, wanted, pending)
        summary.qc_sheet = _qc_sheet(store, cohort, summary.skipped, index)
        summary.identical = identical_frames(store, cohort, index)
    summary.seconds = time.perf_counter() - start
    return summary


def _qc_sheet(store: Path, cohort: Cohort, skipped: list[str], index: dict) -> Path:
    """STORE/qc.html over the cohort; the PNGs of skipped patients made again where missing (a store
    prepared before QC sheets existed)."""
    for pid in skipped:
        if not qc_png_path(store, pid).is_file():
            try:
                write_qc_png(store, load_prepared(store, pid))
            except VcpredError as exc:  # its row says so; the prepared file is checked again on use
                console.warn(f"patient {pid!r}: no QC image: {exc}")
    return write_qc_sheet(store, cohort.ids(), index)


def identical_frames(store: Path, cohort: Cohort, index: dict) -> list[list[PatientRecord]]:
    """The groups of the cohort's prepared patients whose frames are identical, by their entries'
    frames_sha256; an entry of an earlier vcpred that lacks it gets it from its (verified) file, and
    it is recorded. Call under the store lock."""
    entries = index["patients"]
    groups: dict[str, list[PatientRecord]] = {}
    recorded: dict[str, dict] = {}
    for record in cohort.records:
        entry = entries.get(record.patient_id)
        if not isinstance(entry, dict) or entry.get("status") != "ok":
            continue  # failed: listed as such
        digest = entry.get("frames_sha256")
        if digest is None:
            try:
                digest = frames_digest(load_prepared(store, record.patient_id).frames)
            except VcpredError:  # damaged since: prepared again on the next run
                continue
            recorded[record.patient_id] = {**entry, "frames_sha256": digest}
        groups.setdefault(digest, []).append(record)
    if recorded:
        update_index(store, index["params"], recorded)
    return [group for group in groups.values() if len(group) > 1]


def identical_lines(groups: list[list[PatientRecord]], manifest: Path | str) -> list[str]:
    """What `prepare` says of patients with identical frames: each group with rows and labels, whether
    the labels agree, and the next step."""
    if not groups:
        return []
    lines = [f"{len(groups)} group{'s' if len(groups) > 1 else ''} of patients with identical prepared frames (the "
             "same image under two ids, or an image filed under the wrong patient):"]
    for group in groups:
        named = [f"{r.patient_id} (row {r.row}, label {'unknown' if r.label is None else r.label})" for r in group]
        labels = {r.label for r in group if r.label is not None}
        verdict = "OPPOSITE LABELS, so one of them is wrong" if len(labels) > 1 else "the same label"
        lines.append(f"  {', '.join(named[:-1])} and {named[-1]}: {verdict}")
    lines.append(f"Their image files differ, but their pixels are the same. If they are one patient, keep one and "
                 f"write a reason into the exclude cell of the others in {manifest} (e.g. 'duplicate of "
                 f"{groups[0][0].patient_id}'); otherwise point each at its own images; then run this command again "
                 "(unchanged patients are skipped)")
    return lines
