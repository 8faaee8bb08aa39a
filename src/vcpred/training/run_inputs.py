"""The inputs runs were trained on, verified the same way by every stage that reads runs.

A finished run records its manifest, prepared store and splits file twice: where they lie
(`input_paths`, relative to the run dir: vcpred.runs finds them from any working directory, and
after runs, store and cohort were moved together) and what they held (`inputs`: the sha256 of the
manifest and the splits file, a digest of the store's parameters and patients' files). export,
evaluate and report call `check_run_inputs` before reading anything else: an input that is no
longer what the runs trained on (edited, re-prepared with another --size, regenerated, replaced
by another cohort's) is refused in one line naming it and the runs; one that is not found is
refused where the command needs it and said in one note where it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vcpred import console
from vcpred.errors import RunError, VcpredError
from vcpred.hashing import sha256_file
from vcpred.runs import INPUT_KEYS, RunRecord, run_label

WHAT = {"manifest": "manifest", "store": "prepared store", "splits": "splits file"}
RETRAIN_THEM = "train them again (`vcpred experiment CONFIG --out RUNS --retrain-stale`)"
MAX_LISTED = 8  # runs named in one message


class InputsChanged(RunError):
    """Runs read together were trained on inputs that are no longer (or not all) the ones on disk."""


def _listed(labels: list[str]) -> str:
    more = f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else ""
    return ", ".join(labels[:MAX_LISTED]) + more


def recorded_digest(record: RunRecord, key: str) -> str | None:
    """The fingerprint a run recorded for one input (None: not recorded, or a model without images
    has no store fingerprint)."""
    value = (record.inputs or {}).get(f"{key}_sha256")
    if value is None and key != "store":  # runs of an earlier vcpred record these two at the top level
        value = record.raw.get(f"{key}_sha256")
    return value if isinstance(value, str) and value else None


def store_fingerprint(store: str | Path, manifest: str | Path) -> str:
    """The digest `vcpred train` records for a store: its parameters and each cohort patient's file."""
    from vcpred.cohort import load_manifest
    from vcpred.imaging.store import store_digest

    return store_digest(store, load_manifest(manifest, check_files=False).ids())


def _where(record: RunRecord, key: str) -> tuple[str, str]:
    """(how the run says where the input lies, what to do) for a message about one that is not found."""
    if record.input_paths:
        return (f"config.yaml records it as {record.input_paths[key]}, relative to the run dir",
                "keep runs, store and cohort together when moving them")
    return (f"config.yaml records it as {getattr(record.trained, key)}, relative to the working directory vcpred "
            "trained them from (an earlier vcpred)", "run this command from that directory, or train the runs again")


@dataclass
class CheckedInputs:
    """The verified path of each input the runs share (None: not recorded, or not found)."""

    paths: dict[str, Path | None] = field(default_factory=dict)
    records: list[RunRecord] = field(default_factory=list)
    fingerprints: dict = field(default_factory=dict)  # _fingerprint's, so a path verified again is not hashed again

    def verify(self, key: str, path: str | Path | None) -> Path | None:
        """`path` (found another way, or named by the user) when it holds what the runs were trained on
        or they recorded no fingerprint; InputsChanged naming it when it differs; None when it is None
        or a store that cannot be verified (its manifest is not known)."""
        if path is None:
            return None
        path = Path(path)
        actual = _fingerprint(key, path, self.paths.get("manifest"), self.fingerprints)
        recorded = [r for r in self.records if recorded_digest(r, key) is not None]
        if recorded and actual is None:
            return None
        _refuse_changed({(key, str(path)): [run_label(r.path) for r in recorded if recorded_digest(r, key) != actual]})
        self.paths[key] = path
        return path


def check_run_inputs(records: list[RunRecord], *, needed: tuple[str, ...] = ()) -> CheckedInputs:
    """Verify the inputs of runs read together: one manifest, store and splits file for all of them,
    each still holding what they were trained on. InputsChanged (one line naming the input and the
    runs) when one differs, or when an input in `needed` is not found; a note for one not found that
    the command can do without. Runs that recorded no fingerprint (another tool's) are not checked."""
    records = [r for r in records if r.trained is not None]
    _refuse_mixed(records)
    checked = CheckedInputs(records=records)
    missing: dict[tuple[str, str], list[RunRecord]] = {}
    changed: dict[tuple[str, str], list[str]] = {}
    for key in INPUT_KEYS:
        for record in records:
            recorded = recorded_digest(record, key)
            if recorded is None:
                continue
            path = Path(getattr(record.trained, key))
            if not path.exists():
                missing.setdefault((key, str(path)), []).append(record)
                continue
            actual = _fingerprint(key, path, checked.paths.get("manifest"), checked.fingerprints)
            if actual is None:  # a store whose manifest is not found: it cannot be verified
                missing.setdefault(("manifest", str(record.trained.manifest)), []).append(record)
            elif actual != recorded:
                changed.setdefault((key, str(path)), []).append(run_label(record.path))
            else:
                checked.paths.setdefault(key, path)
    _refuse_changed(changed)
    _report_missing(missing, needed)
    return checked


def _fingerprint(key: str, path: Path, manifest: Path | None, cache: dict) -> str | None:
    """What `vcpred train` would record for this input now (None: a store without its verified manifest)."""
    found = (key, str(path), str(manifest) if key == "store" else None)  # a store is digested over a manifest's patients
    if found not in cache:
        try:
            if key == "store":
                cache[found] = store_fingerprint(path, manifest) if manifest is not None else None
            else:
                cache[found] = sha256_file(path)
        except (OSError, VcpredError):
            cache[found] = "unreadable"  # differs from any recorded digest: refused, named
    return cache[found]


def _refuse_mixed(records: list[RunRecord]) -> None:
    """The runs read together were trained on one splits file and one manifest (by their fingerprints)."""
    for key in ("splits", "manifest"):
        by_digest: dict[str, list[str]] = {}
        for record in records:
            if recorded_digest(record, key) is not None:
                by_digest.setdefault(recorded_digest(record, key), []).append(run_label(record.path))
        if len(by_digest) > 1:
            what = WHAT[key]
            groups = "; ".join(f"{_listed(labels)} (sha256 {digest[:12]}...)" for digest, labels in by_digest.items())
            raise InputsChanged(f"these runs were trained on different {what}s: {groups}; runs are compared on the "
                                f"same patients, so read runs of one {what} together: {RETRAIN_THEM} or move the "
                                "others to another RUNS folder")


def _refuse_changed(changed: dict[tuple[str, str], list[str]]) -> None:
    changed = {where: labels for where, labels in changed.items() if labels}
    if not changed:
        return
    inputs = "; ".join(f"the {WHAT[key]} {path} ({_listed(labels)})" for (key, path), labels in changed.items())
    it = "it" if len(changed) == 1 else "them"
    raise InputsChanged(f"changed since these runs were trained on {it}: {inputs}; the fingerprint differs from "
                        f"the one their config.yaml recorded (edited, re-prepared, regenerated or replaced); "
                        f"{RETRAIN_THEM}, or restore {it}")


def _report_missing(missing: dict[tuple[str, str], list[RunRecord]], needed: tuple[str, ...]) -> None:
    for (key, path), records in missing.items():
        labels = _listed(sorted({run_label(r.path) for r in records}))
        where, advice = _where(records[0], key)
        if key in needed or (key == "manifest" and "store" in needed):  # the store is verified through it
            raise InputsChanged(f"the {WHAT[key]} {path} that {labels} were trained on is not found ({where}); "
                                f"{advice}")
        console.say(f"note: the {WHAT[key]} {path} that {labels} were trained on is not found ({where}), so it is "
                    "not checked")
