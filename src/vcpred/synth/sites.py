"""Scanner sites: the acquisition geometry and image-quality effects that differ between hospitals.

Development patients come from sites A, B and C; the external set comes only from site D, which the
development set never sees (another vendor, stronger bias field, more noise, different contrast), so
external validation meets a real domain shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Site:
    """One scanner/hospital. Lengths in mm, field in tesla."""

    name: str
    manufacturer: str
    model: str
    field_t: float
    pixel_mm: tuple[float, float]        # in-plane pixel size range (uniform draw)
    fov_mm: tuple[float, float]          # field-of-view range; matrix = FOV / pixel, clipped 256..384
    thickness_mm: tuple[float, ...]      # slice thicknesses used at this site
    gap_fraction: float                  # spacing between slices = thickness * (1 + gap_fraction)
    slices: tuple[int, int]              # number of slices range (inclusive)
    bias: float                          # SD of the log bias-field coefficients
    noise: float                         # Rician noise SD as a fraction of the fat signal
    gamma: tuple[float, float]           # contrast gamma (T1, T2) applied to the 0..1 signal
    scale: float                         # stored value of fat signal (vendor-specific dynamic range)
    rescale: tuple[float, float] = (1.0, 0.0)  # DICOM RescaleSlope, RescaleIntercept
    weight: float = 1.0                  # share of the development patients


SITES: dict[str, Site] = {
    "A": Site("A", "SIEMENS", "Skyra", 3.0, (0.8, 0.95), (300, 330), (3.0, 3.5), 0.1, (13, 17),
              bias=0.10, noise=0.025, gamma=(1.0, 1.0), scale=900.0, weight=0.45),
    "B": Site("B", "GE MEDICAL SYSTEMS", "SIGNA Explorer", 1.5, (0.9, 1.1), (300, 340), (4.0,), 0.1,
              (11, 15), bias=0.14, noise=0.035, gamma=(1.1, 0.95), scale=2200.0, weight=0.35),
    # Site C stores pixels with a non-trivial rescale so readers must apply the modality LUT.
    "C": Site("C", "Philips Medical Systems", "Ingenia", 1.5, (0.85, 1.05), (300, 330), (3.5, 4.0),
              0.0, (12, 16), bias=0.12, noise=0.03, gamma=(0.95, 1.05), scale=1500.0,
              rescale=(1.5, -100.0), weight=0.20),
    "D": Site("D", "Canon Medical Systems", "Vantage Orian", 1.5, (1.0, 1.2), (310, 360), (4.0,),
              0.1, (11, 14), bias=0.28, noise=0.055, gamma=(1.25, 0.8), scale=3000.0, weight=0.0),
}
DEVELOPMENT_SITES = ("A", "B", "C")
EXTERNAL_SITES = ("D",)


def choose_site(rng: np.random.Generator, set_name: str) -> Site:
    """Draw the site of one patient: weighted among the development sites, else the external one."""
    names = DEVELOPMENT_SITES if set_name == "development" else EXTERNAL_SITES
    weights = np.array([SITES[n].weight or 1.0 for n in names])
    return SITES[names[rng.choice(len(names), p=weights / weights.sum())]]


@dataclass(frozen=True)
class Geometry:
    """The voxel grid of one series: canonical array [slice, row, col]."""

    n_slices: int
    n_rows: int
    n_cols: int
    pixel_mm: float
    thickness_mm: float
    spacing_mm: float        # centre-to-centre distance between slices

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_slices, self.n_rows, self.n_cols)


def draw_geometry(rng: np.random.Generator, site: Site, size: int | None = None) -> Geometry:
    """Matrix, pixel size and slices of one patient's series at this site.

    `size` (tests only) forces a square matrix of that many pixels at the same field of view.
    """
    pixel = float(rng.uniform(*site.pixel_mm))
    fov = float(rng.uniform(*site.fov_mm))
    n = int(np.clip(round(fov / pixel), 256, 384))
    if size is not None:
        pixel, n = pixel * n / size, int(size)
    thickness = float(site.thickness_mm[rng.integers(len(site.thickness_mm))])
    n_slices = int(rng.integers(site.slices[0], site.slices[1] + 1))
    spacing = round(thickness * (1 + site.gap_fraction), 3)
    return Geometry(n_slices, n, n, round(pixel, 4), thickness, spacing)
