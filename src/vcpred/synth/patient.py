"""Simulate one patient: clinical values, lesion, true risk, anatomy, and the image volumes.

Every patient draws from its own generators, seeded by (seed, set, index within the set), so a
patient is the same whatever the number of patients, the other set's size or the number of worker
processes. Separate streams for the clinical/lesion/risk draws, the anatomy, and each sequence's
scanner effects keep, e.g., the T2 pixels identical whether or not T1 is also generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcpred.synth.anatomy import Spine, build_spine
from vcpred.synth.canvas import Canvas
from vcpred.synth.clinical import Clinical, draw_clinical
from vcpred.synth.lesion import Lesion, draw_lesion
from vcpred.synth.risk import Risk, draw_risk
from vcpred.synth.scanner import acquire, tissue_texture
from vcpred.synth.sites import Geometry, Site, choose_site, draw_geometry
from vcpred.synth.softtissue import paint_canal, paint_trunk
from vcpred.synth.tissues import CLEFT
from vcpred.synth.vertebra import paint_body, paint_disc, paint_posterior, paint_retropulsion

SET_CODES = {"development": 0, "external": 1}
SEQUENCE_CODES = {"t1": 1, "t2": 2}
ROI_PAD_PX = 3


@dataclass(frozen=True)
class PatientSpec:
    seed: int
    set_name: str
    index: int                 # within its set
    patient_id: str

    def stream(self, *extra: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SET_CODES[self.set_name], self.index, *extra])


@dataclass
class SimulatedPatient:
    spec: PatientSpec
    site: Site
    geometry: Geometry
    clinical: Clinical
    lesion: Lesion
    risk: Risk
    spine: Spine
    roi: tuple[int, int, int, int, int]    # slice, row_min, col_min, row_max, col_max
    volumes: dict[str, np.ndarray]         # sequence -> stored uint16 [slice, row, col]
    fracture: np.ndarray                   # bool [slice, row, col]: the acute fractured body
    labels: np.ndarray                     # uint8 [slice, row, col]: tissue ids (tissues.py)
    cleft_slices: tuple[int, ...]          # slices on which the cleft is visible
    origin_lps: tuple[float, float, float]  # world position (mm) of voxel [0, 0, 0]
    study_day: int                         # days after 2024-01-01


def draw_outcome(spec: PatientSpec) -> tuple[Clinical, Lesion, Risk]:
    """Clinical values, lesion factors and true risk of a patient (cheap: no images)."""
    rng = spec.stream(0)
    clinical = draw_clinical(rng)
    lesion = draw_lesion(rng, clinical)
    return clinical, lesion, draw_risk(rng, clinical, lesion)


def simulate(spec: PatientSpec, sequences: tuple[str, ...], size: int | None = None) -> SimulatedPatient:
    """Simulate one patient and render the requested sequences."""
    clinical, lesion, risk = draw_outcome(spec)
    anat = spec.stream(1)
    site = choose_site(anat, spec.set_name)
    geometry = draw_geometry(anat, site, size)
    fov = geometry.n_rows * geometry.pixel_mm
    target = (fov * 0.42 + anat.normal(0, 8), fov * 0.47 + anat.normal(0, 8))
    spine = build_spine(anat, clinical, lesion, target)
    canvas = Canvas(geometry)
    paint_anatomy(canvas, spine, lesion, anat)
    roi = roi_box(canvas, spine)
    texture = tissue_texture(canvas.label, anat)
    volumes = {}
    for sequence in sequences:
        signal = canvas.t1 if sequence == "t1" else canvas.t2
        volumes[sequence] = acquire(signal, texture, site, sequence,
                                    spec.stream(2, SEQUENCE_CODES[sequence]))
    cleft = (canvas.label == CLEFT.id) & canvas.fracture
    cleft_slices = tuple(int(k) for k in np.flatnonzero(cleft.any(axis=(1, 2))))
    origin = (float(canvas.xs[0] + anat.normal(0, 3)), float(-fov / 2 + anat.normal(0, 5)),
              float(fov / 2 + anat.normal(0, 20)))
    return SimulatedPatient(spec, site, geometry, clinical, lesion, risk, spine, roi, volumes,
                            canvas.fracture, canvas.label, cleft_slices, origin,
                            int(anat.integers(0, 365)))


def paint_anatomy(canvas: Canvas, spine: Spine, lesion: Lesion, rng: np.random.Generator) -> None:
    """Soft tissue first, then canal, discs, bodies (with the lesion) and posterior elements."""
    paint_trunk(canvas, spine, rng)
    paint_canal(canvas, spine)
    for vb in spine.vertebrae:
        paint_posterior(canvas, spine, vb)
    for disc in spine.discs:
        paint_disc(canvas, spine, disc)
    for vb in spine.vertebrae:
        paint_body(canvas, spine, vb, lesion, rng)
    paint_retropulsion(canvas, spine, lesion)


def central_slice(canvas: Canvas, spine: Spine) -> int:
    """The slice whose centre is nearest the fractured body's mid-sagittal plane."""
    x_mid = float(spine.midline_x(spine.fracture.centre[0]))
    return int(np.argmin(np.abs(canvas.xs - x_mid)))


def roi_box(canvas: Canvas, spine: Spine) -> tuple[int, int, int, int, int]:
    """Tight box (+ a few pixels) around the fractured body on its central slice; max exclusive."""
    k = central_slice(canvas, spine)
    rows, cols = np.nonzero(canvas.fracture[k])
    if rows.size == 0:
        raise RuntimeError(f"fractured body not rendered on slice {k}: a bug in vcpred.synth")
    n_r, n_c = canvas.fracture.shape[1:]
    return (k, max(int(rows.min()) - ROI_PAD_PX, 0), max(int(cols.min()) - ROI_PAD_PX, 0),
            min(int(rows.max()) + 1 + ROI_PAD_PX, n_r), min(int(cols.max()) + 1 + ROI_PAD_PX, n_c))
