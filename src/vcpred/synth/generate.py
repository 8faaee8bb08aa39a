"""`generate_cohort`: simulate N patients, write their images, manifest.csv, truth.csv, synth.json.

Output folder layout (paths in the manifest are relative to it):
    manifest.csv                       the cohort manifest (docs/manifest.md schema)
    truth.csv                          true logit/probability and latent lesion factors
    synth.json                         the generator's arguments and patient ids (provenance)
    .vcpred-output.json                every file written (vcpred.output_folder): what --force may replace
    images/<patient_id>/<sequence>/    one DICOM file per slice (format dicom), or
    images/<patient_id>/<sequence>.nii.gz                                  (format nifti)
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vcpred import __version__, console
from vcpred.errors import ConfigError
from vcpred.output_folder import replacing
from vcpred.stats import MIN_PER_CLASS, roc_auc
from vcpred.synth.output import MANIFEST_COLUMNS, TRUTH_COLUMNS, PatientJob, write_patient
from vcpred.synth.patient import PatientSpec
from vcpred.workers import worker_pool

SUPPORTED_SEQUENCES = ("t1", "t2")
FORMATS = ("dicom", "nifti")


@dataclass
class SynthResult:
    """What `generate_cohort` wrote and the cohort's headline numbers."""

    out: Path
    manifest: Path
    truth: Path
    n_patients: dict[str, int]
    prevalence: dict[str, float]
    bayes_auc: dict[str, float | None]       # None when a set has only one outcome class
    seconds: float
    bytes_written: int
    sites: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        total = sum(self.n_patients.values())
        lines = [f"wrote {total} synthetic patients to {self.out}"]
        for name, n in self.n_patients.items():
            if n == 0:
                continue
            auc = self.bayes_auc[name]
            auc_text = "n/a (one outcome class)" if auc is None else f"{auc:.3f}"
            lines.append(f"  {name:<11} {n:>4} patients  prevalence {100 * self.prevalence[name]:5.1f}%  "
                         f"Bayes AUC {auc_text}  sites {', '.join(self.sites[name])}")
        lines.append(f"manifest: {self.manifest}")
        lines.append(f"truth (true risk, never give it to a model): {self.truth}")
        return "\n".join(lines)


def _check_arguments(n_development: int, n_external: int, seed: int, fmt: str,
                     sequences: tuple[str, ...], jobs: int, size: int | None) -> tuple[str, ...]:
    for name, value in (("development", n_development), ("external", n_external)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigError(f"number of {name} patients must be a whole number >= 0, got {value!r}")
    if n_development + n_external == 0:
        raise ConfigError("no patients to generate: give --development and/or --external > 0")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown image format {fmt!r}; use one of: {', '.join(FORMATS)}")
    sequences = tuple(s.strip().lower() for s in sequences)
    unknown = [s for s in sequences if s not in SUPPORTED_SEQUENCES]
    if not sequences or unknown:
        raise ConfigError(f"unknown sequence(s) {unknown or sequences!r}: vcpred synth can only make "
                          f"{' and '.join(SUPPORTED_SEQUENCES)} (e.g. --sequences t2,t1)")
    if len(set(sequences)) != len(sequences):
        raise ConfigError(f"sequence listed twice in {','.join(sequences)}; list each once")
    if not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ConfigError(f"jobs must be a whole number >= 1, got {jobs!r}")
    if size is not None and not 32 <= size <= 1024:
        raise ConfigError(f"image size must be between 32 and 1024 pixels, got {size}")
    return sequences


def patient_ids(n_development: int, n_external: int) -> list[tuple[str, int, str]]:
    """(set, index within the set, patient id) for every patient, development first."""
    return ([("development", i, f"dev{i + 1:04d}") for i in range(n_development)]
            + [("external", i, f"ext{i + 1:04d}") for i in range(n_external)])


def _auc(labels: list[int], scores: list[float]) -> float | None:
    """The Bayes AUC of a set (None below 2 cases or 2 controls, as vcpred.stats requires)."""
    return roc_auc(labels, scores) if min(sum(labels), len(labels) - sum(labels)) >= MIN_PER_CLASS else None


def _run_jobs(jobs: list[PatientJob], workers: int) -> list[tuple[dict, dict, int]]:
    """Run every patient job, in order, on `workers` processes (1: in this process)."""
    if workers == 1 or len(jobs) == 1:
        return [write_patient(j) for j in console.progress(jobs, total=len(jobs), desc="synth")]
    with worker_pool(min(workers, len(jobs))) as pool:
        results = pool.map(write_patient, jobs, chunksize=2)
        return list(console.progress(results, total=len(jobs), desc="synth"))


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def generate_cohort(out: str | Path, *, n_development: int = 200, n_external: int = 45, seed: int = 0,
                    fmt: str = "dicom", sequences: tuple[str, ...] | list[str] = ("t2", "t1"),
                    jobs: int = 1, size: int | None = None, force: bool = False) -> SynthResult:
    """Generate a synthetic OVCF cohort with known true risk into folder `out`.

    Same arguments -> byte-identical manifest.csv/truth.csv and pixel-identical images, whatever
    `jobs`. `size` (tests and demos only) forces square images of that many pixels.
    Raises ConfigError for invalid arguments and OutputError (a VcpredError) when `out` cannot be
    used: it is a file, a folder synth did not write, or an earlier cohort without `force`.
    """
    sequences = _check_arguments(n_development, n_external, seed, fmt, tuple(sequences), jobs, size)
    out = Path(out)
    plan = patient_ids(n_development, n_external)
    started = time.perf_counter()
    # Written beside `out`, put in place complete; an earlier cohort is replaced only with force, a
    # folder synth did not write never (vcpred.output_folder).
    with replacing(out, kind="cohort", force=force) as folder:
        (folder / "images").mkdir()
        work = [PatientJob(PatientSpec(int(seed), set_name, index, pid), sequences, fmt, folder, size)
                for set_name, index, pid in plan]
        results = _run_jobs(work, int(jobs))
        manifest_rows = [r[0] for r in results]
        truth_rows = [r[1] for r in results]
        image_columns = [f"image_{s}" for s in sequences]
        _write_csv(folder / "manifest.csv", MANIFEST_COLUMNS[:12] + image_columns + MANIFEST_COLUMNS[12:],
                   manifest_rows)
        _write_csv(folder / "truth.csv", TRUTH_COLUMNS, truth_rows)
        provenance = {"generator": "vcpred synth", "version": __version__, "seed": int(seed),
                      "n_development": n_development, "n_external": n_external, "format": fmt,
                      "sequences": list(sequences), "size": size,
                      "patients": [pid for _, _, pid in plan]}
        (folder / "synth.json").write_text(json.dumps(provenance, indent=1) + "\n")
    return _result(out, manifest_rows, truth_rows, time.perf_counter() - started,
                   sum(r[2] for r in results))


def _result(out: Path, manifest_rows: list[dict], truth_rows: list[dict], seconds: float,
            written: int) -> SynthResult:
    """Headline numbers per set: labels from the manifest, true probabilities from the truth."""
    n, prevalence, auc, sites = {}, {}, {}, {}
    for name in ("development", "external"):
        labels = [int(m["label"]) for m in manifest_rows if m["set"] == name]
        scores = [float(t["true_probability"]) for t in truth_rows if t["set"] == name]
        n[name] = len(labels)
        prevalence[name] = float(np.mean(labels)) if labels else float("nan")
        auc[name] = _auc(labels, scores) if labels else None
        sites[name] = sorted({m["site"] for m in manifest_rows if m["set"] == name})
    return SynthResult(out, out / "manifest.csv", out / "truth.csv", n, prevalence, auc, seconds,
                       written, sites)
