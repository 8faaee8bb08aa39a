"""The one guard for every folder vcpred writes: synth, prepare, train/experiment run dirs, evaluate,
export, predict and validate (and the viewer's result folders).

The rules:
- **Write beside, swap on success.** `replacing(out, kind=...)` yields a temporary sibling of `out`
  (`.NAME.vcpred-HOST-PID-XXXXXXXX.tmp`, in the same folder, so on the same file system); the
  command writes its whole result there. When the block ends normally the result goes in place in
  one step: a rename onto a new or empty `out`, or, over an earlier result, an atomic exchange of
  the two folders (Linux renameat2; elsewhere the earlier folder is renamed aside first and renamed
  back should the second rename fail), after which the earlier result is removed. Any failure in
  the block, an exception or Ctrl-C (KeyboardInterrupt) included, removes the temporary sibling and
  leaves `out` exactly as it was.
- **Delete only what vcpred wrote.** Every folder written this way holds a marker,
  `.vcpred-output.json`: the kind of result and every file and folder written. An earlier result is
  replaced only when everything in it is listed there. Results written before the marker existed
  are recognised by their own record (evaluation.json, prediction.json/summary.json, bundle.json,
  synth.json, a finished run's config.yaml, a store's index.json) and their known file names.
- **Never a user's folder.** A non-empty folder that is not such a result, or one that also holds
  files vcpred did not write, is never deleted, emptied or written into, with or without --force:
  `OutputError` (one `error: ...` line, exit 2) asks for a new or empty folder.

`check(out, kind=..., force=...)` applies the same rules without writing anything, so a command can
refuse a bad --out before its work; the prepared store (incremental, written file by file) uses it
alone. A process killed outright (SIGKILL) can leave a temporary sibling; the next write to the same
`out` on the same machine removes the ones whose process is gone.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from vcpred.errors import VcpredError
from vcpred.locking import process_alive
from vcpred.permissions import plain_modes

MARKER = ".vcpred-output.json"
MARKER_FORMAT = "vcpred-output"
MAX_LISTED = 5


class OutputError(VcpredError):
    """An output folder cannot be used: it is a file, not vcpred's, or holds files vcpred did not write."""


@dataclass(frozen=True)
class Kind:
    """What one command writes into its --out folder."""

    name: str                # the marker's `kind`
    what: str                # how messages name such a folder
    replace_needs_force: bool  # an earlier result is replaced only with --force
    again: str = "replace it"  # what --force does to an earlier result
    legacy: Callable[[Path], list[str] | None] | None = None  # own-path patterns of pre-marker results
    replaceable: bool = True  # False: only checked, never swapped (the incremental store)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _legacy_evaluation(out: Path) -> list[str] | None:
    if _json(out / "evaluation.json").get("generator") != "vcpred evaluate":
        return None
    return ["summary.csv", "per_split.csv", "ensemble_predictions.csv", "evaluation.json", "tables.md",
            "figures", "figures/*.png"]


def _legacy_prediction(out: Path) -> list[str] | None:
    if not any(_json(out / name).get("generator") == "vcpred predict" for name in ("prediction.json", "summary.json")):
        return None
    return ["prediction.json", "heatmap.png", "heatmap_sc.dcm", "report.html", "predictions.csv", "summary.json",
            "heatmaps", "heatmaps/*.png"]


def _legacy_model(out: Path) -> list[str] | None:
    meta = _json(out / "bundle.json")
    files = meta.get("files")
    if meta.get("format") != "vcpred-model-bundle" or not isinstance(files, dict):
        return None
    listed = ["bundle.json", *(glob.escape(str(name)) for name in files)]
    return listed + sorted({glob.escape(str(Path(name).parent)) for name in files} - {"."})


def _legacy_cohort(out: Path) -> list[str] | None:
    record = _json(out / "synth.json")
    if record.get("generator") != "vcpred synth":
        return None
    patients = [str(p) for p in record.get("patients") or [] if "/" not in str(p) and str(p) not in ("", ".", "..")]
    return (["manifest.csv", "truth.csv", "synth.json", "images"]
            + [f"images/{glob.escape(p)}" for p in patients] + [f"images/{glob.escape(p)}/**" for p in patients])


def _legacy_run(out: Path) -> list[str] | None:
    from vcpred.runs import written_by_training

    if not written_by_training(out):
        return None
    return ["config.yaml", "metrics.json", "predictions.csv", "model", "model/*"]


def _store(out: Path) -> list[str] | None:
    return ["**"] if _json(out / "index.json").get("format") == "vcpred-prepared-store" else None


DEMO_RECORD = ".vcpred-demo.json"  # `vcpred demo` writes it into its --out before its first step
# What the demo writes at the top of its folder (its steps' temporary siblings included).
DEMO_NAMES = ("experiment.yaml", "splits.json", "cohort", "store", "runs", "eval", "model", "model-vit", "predict",
              "report.html")


def _demo(out: Path) -> list[str] | None:
    """A demo folder: its record, or (made before the record existed) a synth cohort in cohort/ and nothing
    at the top but the demo's own names."""
    if _json(out / DEMO_RECORD).get("generator") == "vcpred demo":
        return ["**"]
    own = [pattern for name in DEMO_NAMES for pattern in (name, f".{name}.vcpred-*")]
    top = [path.name for path in out.iterdir()]
    if (out / "cohort" / "synth.json").is_file() and all(any(fnmatchcase(n, p) for p in own) for n in top):
        return ["**"]
    return None


KINDS = {kind.name: kind for kind in (
    Kind("cohort", "an earlier `vcpred synth` cohort", True, legacy=_legacy_cohort),
    Kind("store", "a vcpred prepared store", False, legacy=_store, replaceable=False),
    Kind("run", "a vcpred run dir", True, again="train it again", legacy=_legacy_run),
    Kind("evaluation", "an earlier `vcpred evaluate` output", False, legacy=_legacy_evaluation),
    Kind("model", "an earlier `vcpred export` model directory", True, legacy=_legacy_model),
    Kind("prediction", "an earlier `vcpred predict` output", False, legacy=_legacy_prediction),
    Kind("validation", "an earlier `vcpred validate` output", False),
    Kind("site-shift", "an earlier `vcpred cohort shift` output", False),
    Kind("demo", "a `vcpred demo` folder", False, legacy=_demo, replaceable=False),
)}


def _kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown output kind {name!r}; one of {', '.join(KINDS)}") from None


def _entries(folder: Path) -> tuple[list[str], list[str]]:
    """(files, folders) under folder as relative POSIX paths, the marker left out; links are listed
    as files and never followed."""
    files, folders = [], []

    def fail(exc: OSError) -> None:
        raise OutputError(f"cannot read {exc.filename}: {exc.strerror or exc}; vcpred does not replace a folder "
                          "it cannot list completely")

    for root, dirs, names in os.walk(folder, onerror=fail):
        base = Path(root).relative_to(folder)
        for name in list(dirs):
            if Path(root, name).is_symlink():
                dirs.remove(name)
                names.append(name)
            else:
                folders.append((base / name).as_posix())
        files += [(base / name).as_posix() for name in names if not (base == Path(".") and name == MARKER)]
    return sorted(files), sorted(folders)


def _matches(path: str, pattern: str) -> bool:
    parts, wanted = path.split("/"), pattern.split("/")
    if wanted[-1] == "**":
        head = wanted[:-1]
        return len(parts) > len(head) and all(fnmatchcase(p, w) for p, w in zip(parts, head))
    return len(parts) == len(wanted) and all(fnmatchcase(p, w) for p, w in zip(parts, wanted))


def _recorded(out: Path) -> dict | None:
    marker = _json(out / MARKER)
    if marker.get("format") != MARKER_FORMAT or not isinstance(marker.get("files"), list):
        return None
    return marker


def _foreign(out: Path, kind: Kind) -> list[str] | None:
    """Paths in out that vcpred did not write as this kind of result; None when out is not such a result."""
    marker = _recorded(out)
    if marker is not None:
        if marker.get("kind") != kind.name:
            return None
        own = set(marker["files"]) | set(marker.get("folders") or [])
        is_own = own.__contains__
    else:
        patterns = kind.legacy(out) if kind.legacy else None
        if patterns is None:
            return None
        if not kind.replaceable:
            return []
        is_own = lambda path: any(_matches(path, p) for p in patterns)  # noqa: E731
    files, folders = _entries(out)
    foreign = [f for f in files if not is_own(f)]
    foreign += [f"{d}/" for d in folders if not is_own(d) and not any(f.startswith(d + "/") for f in files)]
    return sorted(foreign)


def _listing(paths: list[str]) -> str:
    more = f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
    return ", ".join(paths[:MAX_LISTED]) + more


def _state(out: Path, kind: Kind) -> str:
    """'new', 'empty' or 'own' (an earlier result of this kind, nothing else in it); OutputError otherwise."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder; choose a folder path")
    if not out.exists():
        return "new"
    if not any(out.iterdir()):
        return "empty"
    foreign = _foreign(out, kind)
    if foreign is None:
        other = _recorded(out)
        held = f" (it holds a vcpred {other['kind']} output)" if other and other.get("kind") in KINDS else ""
        raise OutputError(f"--out {out} is not empty and is not {kind.what}{held}; vcpred never deletes or writes "
                          "into a folder it did not write: choose a new or empty folder")
    if foreign:
        raise OutputError(f"--out {out} holds {kind.what} and also files vcpred did not write ({_listing(foreign)}); "
                          "vcpred never deletes them: move them out of the folder, or choose a new or empty folder")
    return "own"


def _target(out: str | Path) -> Path:
    """out as an absolute path; a link to a folder is followed (the folder is replaced, not the link)."""
    out = Path(os.path.abspath(out))
    return out.resolve() if out.is_symlink() else out


def check(out: str | Path, *, kind: str, force: bool = False) -> str:
    """Whether `replacing(out, kind=kind, force=force)` may write: returns 'new', 'empty' or 'own'
    (an earlier result it will replace); raises OutputError, naming what to do, when it may not."""
    spec = _kind(kind)
    out = _target(out)
    state = _state(out, spec)
    if state == "own" and spec.replaceable and spec.replace_needs_force and not force:
        earlier = "a finished run" if spec.name == "run" else spec.what
        raise OutputError(f"--out {out} is not empty: it holds {earlier}; pass --force to {spec.again}, or choose "
                          "a new or empty folder")
    return state


# --- the temporary sibling and the swap -------------------------------------------------------------

_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"


def _prefix(out: Path) -> str:
    return f".{out.name[:80]}.vcpred-"


def _sibling(out: Path, suffix: str) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{_prefix(out)}{_HOST}-{os.getpid()}-", suffix=suffix, dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror or exc}; choose a folder you can "
                          "write to") from None


def _remove_stale(out: Path) -> None:
    """Temporary siblings of out left by a process of this machine that no longer runs (SIGKILL):
    unfinished results (.tmp) are removed; an earlier result renamed aside (.old) goes back in place
    when out is missing, else it is removed."""
    pattern = re.compile(re.escape(_prefix(out) + _HOST) + r"-(\d+)-[A-Za-z0-9_]+\.(tmp|old)$")
    for path in sorted(out.parent.glob(glob.escape(_prefix(out)) + "*")):
        found = pattern.match(path.name)
        if not found or int(found[1]) == os.getpid() or process_alive(int(found[1])) or not path.is_dir():
            continue
        if found[2] == "old" and not out.exists():
            os.rename(path, out)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _write_marker(folder: Path, kind: Kind) -> None:
    from vcpred import __version__

    files, folders = _entries(folder)
    marker = {"format": MARKER_FORMAT, "generator": "vcpred", "kind": kind.name, "vcpred_version": __version__,
              "note": "what vcpred wrote here; vcpred replaces this folder only while it holds nothing else",
              "files": files, "folders": folders}
    (folder / MARKER).write_text(json.dumps(marker, indent=1) + "\n")


def _swap(new: Path, out: Path, kind: Kind) -> None:
    """Put the complete result `new` at `out`; the earlier result (if any) is removed afterwards."""
    state = _state(out, kind)  # out may have changed while the result was being written
    if state in ("new", "empty"):
        try:
            os.rename(new, out)  # onto an empty folder too (POSIX)
        except OSError:
            if state != "empty":
                raise
            out.rmdir()
            os.rename(new, out)
        return
    if _exchange(new, out):  # out: the new result; new: the earlier one, removed by the caller
        return
    aside = _sibling(out, ".old")
    try:
        os.rename(out, aside)  # onto the empty folder just made
        os.rename(new, out)
    except BaseException:
        if not out.exists() and any(aside.iterdir()):
            os.rename(aside, out)  # the earlier result back in place
        raise
    finally:
        if out.exists() and aside.exists():
            shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def replacing(out: str | Path, *, kind: str, force: bool = False) -> Iterator[Path]:
    """Write a whole result for `out` into the folder this yields; it replaces `out` when the block
    ends normally. Refuses (OutputError) what `check` refuses; on any exception, KeyboardInterrupt
    included, the partial result is removed and `out` is left as it was.

        with replacing(args.out, kind="prediction", force=args.force) as folder:
            write_patient(folder, prediction)
    """
    spec = _kind(kind)
    if not spec.replaceable:
        raise ValueError(f"{kind} folders are written in place; use check()")
    out = _target(out)
    _remove_stale(out)  # first: an earlier result a killed swap left aside is back before the check
    check(out, kind=kind, force=force)
    new = _sibling(out, ".tmp")
    try:
        yield new
        _write_marker(new, spec)
        plain_modes(new)  # mkdtemp's 0700 and libraries' private files (safetensors: 0600) follow the umask
        _swap(new, out, spec)
    finally:
        if new.exists():
            shutil.rmtree(new, ignore_errors=True)
