"""A small prepared store whose sites differ only by acquisition, written directly (no imaging pipeline).

Each patient's main slice is a simple sagittal-like scene (background, a vertebral body, two discs) drawn
in mm and sampled at the site's pixel size, then put through the site's contrast gamma and scale, bias field
and noise. The prepared frame is made with vcpred's own Normalize and Resize steps, as `vcpred prepare` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conftest import write_manifest, patient_row
from vcpred.cohort import load_manifest
from vcpred.imaging.pipeline import PreparedPatient
from vcpred.imaging.preprocess import Normalize, Resize
from vcpred.imaging.store import STORE_FORMAT, STORE_VERSION, record_prepared, save_index, write_prepared

FIELD_MM = 110.0  # side of the main slice
CROP_MM = 40.0  # side of the crop around the vertebra
FRAME = 32  # prepared frame side


@dataclass(frozen=True)
class Acquisition:
    pixel_mm: tuple[float, float]  # uniform draw per patient
    gamma: float  # contrast curve on the 0..1 signal
    noise: float  # Gaussian noise SD, fraction of the full signal
    bias: float  # strength of a linear log bias field across the slice
    scale: float  # stored value of the full signal


ROUTINE = Acquisition(pixel_mm=(0.8, 0.9), gamma=1.0, noise=0.03, bias=0.1, scale=1000.0)
OTHER_SCANNER = Acquisition(pixel_mm=(1.05, 1.15), gamma=1.3, noise=0.07, bias=0.3, scale=3000.0)


def main_slice(rng: np.random.Generator, acquisition: Acquisition) -> tuple[np.ndarray, float, tuple[float, float]]:
    """(image [n, n] in scanner units, pixel size, the vertebra's centre in mm)."""
    pixel = float(rng.uniform(*acquisition.pixel_mm))
    n = int(round(FIELD_MM / pixel))
    rows, cols = np.mgrid[0:n, 0:n] * pixel
    centre = (FIELD_MM / 2 + rng.uniform(-3, 3), FIELD_MM / 2 + rng.uniform(-3, 3))
    half_height, half_width = rng.uniform(10, 13), rng.uniform(12, 15)
    body = (np.abs(rows - centre[0]) < half_height) & (np.abs(cols - centre[1]) < half_width)
    discs = ((np.abs(np.abs(rows - centre[0]) - half_height - 3) < 2.5) & (np.abs(cols - centre[1]) < half_width))
    signal = 0.25 + rng.uniform(0.25, 0.4) * body + rng.uniform(0.4, 0.6) * discs
    signal = np.clip(signal, 0, 1) ** acquisition.gamma
    bias = np.exp(acquisition.bias * (cols - FIELD_MM / 2) / (FIELD_MM / 2))
    image = (signal * bias + rng.normal(0, acquisition.noise, signal.shape)) * acquisition.scale
    return image.astype(np.float32), pixel, centre


def prepared_patient(rng: np.random.Generator, patient_id: str, roi_box, acquisition: Acquisition,
                     site: str) -> PreparedPatient:
    image, pixel, centre = main_slice(rng, acquisition)
    side = int(round(CROP_MM / pixel))
    top, left = int(round(centre[0] / pixel)) - side // 2, int(round(centre[1] / pixel)) - side // 2
    crop = image[top:top + side, left:left + side]
    normalised, _ = Normalize()(crop, np.ones(crop.shape, bool))
    frames = Resize(size=FRAME)(normalised[None])[:, None]  # [1 frame, 1 channel, FRAME, FRAME]
    return PreparedPatient(
        patient_id=patient_id, frames=frames, frame_offsets=np.array([0]), frame_slices=np.array([7]),
        crop_box=np.array([top, left, top + side, left + side]), roi_box=np.asarray(roi_box), roi_slice=7,
        main_slice=image, spacing=(4.0, pixel, pixel), channels=["t2"],
        provenance={"sequences": {"t2": {"manufacturer": f"Vendor {site}", "model": "M1"}}})


def build_site_store(folder: Path, groups: list[tuple[str, str, int, Acquisition]], seed: int = 0):
    """groups: (site, set, patients, acquisition). Writes manifest.csv and store/; returns (cohort, store)."""
    rng = np.random.default_rng(seed)
    rows, acquisitions = [], {}
    for site, set_name, count, acquisition in groups:
        for _ in range(count):
            rows.append(patient_row(len(rows), set_name=set_name, label=int(rng.random() < 0.3), site=site))
            acquisitions[rows[-1]["patient_id"]] = (acquisition, site)
    cohort = load_manifest(write_manifest(folder, rows), check_files=False)
    store = folder / "store"
    store.mkdir()
    save_index(store, {"format": STORE_FORMAT, "version": STORE_VERSION,
                       "params": {"normalize": "zscore", "size": FRAME}, "patients": {}})
    for record in cohort.records:
        acquisition, site = acquisitions[record.patient_id]
        write_prepared(store, prepared_patient(rng, record.patient_id, record.roi.box, acquisition, site))
        record_prepared(store, record.patient_id)
    return cohort, store
