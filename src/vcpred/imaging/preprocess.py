"""The preprocessing steps: small keyword-only classes, validated eagerly, each returning what it
applied so a patient's preparation can be replayed (TorchIO style).

Order in vcpred: N4Correct (3-D volume) -> SelectFrames -> CropROI -> [ResampleCrop] -> Normalize
(per crop) -> Resize.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from vcpred.cohort.manifest import Roi
from vcpred.errors import ConfigError, ImageReadError, RoiError
from vcpred.imaging.orient import Volume

EDGE_POLICIES = ("replicate", "keep")
NORMALIZE_METHODS = ("zscore", "minmax", "quantile")
MIN_SHRUNK_VOXELS = 8  # never shrink an axis below this many voxels for N4
MAX_FRAMES_K = 10  # at most 2k+1 = 21 frames: a sagittal series rarely has more slices around one vertebra
MIN_ROI_PIXELS = 4  # a ROI box must be at least this many pixels high and wide (as in `vcpred serve`)


class Step:
    """Base: `params` are the constructor arguments, recorded with everything the step applied."""

    @property
    def params(self) -> dict:
        values = asdict(self)  # type: ignore[call-overload]  # every Step subclass is a dataclass
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


@dataclass(frozen=True, kw_only=True)
class N4Correct(Step):
    """N4 bias-field correction of the whole 3-D volume (SimpleITK).

    The field is fitted on a copy shrunk by `shrink_factor` (per axis, scaled so shrunk voxels are
    roughly isotropic in mm: thick-slice axes shrink less), raised further in-plane when the copy
    would hold more than `max_fit_voxels` (the fit's cost grows with it; the field is smooth), inside
    an Otsu foreground mask, with at most `iterations` per fitting level; the field is then
    evaluated at full resolution (GetLogBiasFieldAsImage) and divided out.
    """

    shrink_factor: int = 4
    iterations: tuple[int, ...] = (30, 20)
    convergence: float = 1e-3
    otsu_bins: int = 200
    max_fit_voxels: int = 20_000

    def __post_init__(self) -> None:
        if self.shrink_factor < 1:
            raise ConfigError(f"N4 shrink_factor must be >= 1, got {self.shrink_factor}")
        if not self.iterations or any(int(i) < 1 for i in self.iterations):
            raise ConfigError(f"N4 iterations must be positive integers, one per level, got {self.iterations}")
        if not 0 < self.convergence < 1:
            raise ConfigError(f"N4 convergence threshold must be in (0, 1), got {self.convergence}")
        if self.max_fit_voxels < 1000:
            raise ConfigError(f"N4 max_fit_voxels must be at least 1000, got {self.max_fit_voxels}")

    def shrink_per_axis(self, volume: Volume) -> list[int]:
        """Shrink factor per canonical axis (slice, row, col)."""
        finest = min(volume.spacing)
        factors = [int(max(1, min(round(self.shrink_factor * finest / mm), n // MIN_SHRUNK_VOXELS)))
                   for mm, n in zip(volume.spacing, volume.shape)]
        while np.prod([-(-n // f) for n, f in zip(volume.shape, factors)]) > self.max_fit_voxels:
            grown = [f + 1 if a > 0 and n // (f + 1) >= MIN_SHRUNK_VOXELS else f
                     for a, (n, f) in enumerate(zip(volume.shape, factors))]
            if grown == factors:
                break
            factors = grown
        return factors

    def __call__(self, volume: Volume) -> tuple[Volume, dict]:
        """The corrected volume and what was applied."""
        try:
            return self._correct(volume)
        except RuntimeError as exc:  # ITK refuses data it cannot fit (the reader checks what it can first)
            itk = next((line.strip() for line in str(exc).splitlines() if "ERROR" in line), str(exc).splitlines()[0])
            raise ImageReadError(f"N4 bias-field correction failed on this image ({itk}); check the series, "
                                 "or prepare without N4 (--no-n4)") from None

    def _correct(self, volume: Volume) -> tuple[Volume, dict]:
        start = time.perf_counter()
        image = volume.to_sitk()
        shrink = self.shrink_per_axis(volume)
        small = sitk.Shrink(image, shrink[::-1])  # SimpleITK index order is (col, row, slice)
        mask = sitk.OtsuThreshold(small, 0, 1, self.otsu_bins) * sitk.Cast(small > 0, sitk.sitkUInt8)
        fraction = float(sitk.GetArrayViewFromImage(mask).mean())
        applied = {**self.params, "shrink_per_axis": shrink, "mask_fraction": round(fraction, 4)}
        if fraction < 1e-3:  # a blank or constant volume: nothing to fit
            return volume, {**applied, "skipped": "empty Otsu mask"}
        corrector = sitk.N4BiasFieldCorrectionImageFilter()
        corrector.SetMaximumNumberOfIterations([int(i) for i in self.iterations])
        corrector.SetConvergenceThreshold(self.convergence)
        corrector.Execute(small, mask)
        # Evaluated on the full image: ITK maps the control lattice onto the reference image's
        # extent, so the reference must cover the whole volume (a sub-slab gives a stretched field).
        log_bias = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(image))
        corrected = volume.array / np.exp(log_bias).astype(np.float32)
        applied["seconds"] = round(time.perf_counter() - start, 3)
        return volume.with_array(corrected), applied


@dataclass(frozen=True, kw_only=True)
class SelectFrames(Step):
    """Main slice roi_slice and k neighbours each side (offsets -k..k).

    edge="replicate": offsets beyond the volume reuse the edge slice (always 2k+1 frames);
    edge="keep": those frames are dropped (fewer frames). Either way it is recorded.
    """

    k: int = 2
    edge: str = "replicate"

    def __post_init__(self) -> None:
        if not 0 <= self.k <= MAX_FRAMES_K:
            raise ConfigError(f"frames k (adjacent slices each side) must be between 0 and {MAX_FRAMES_K} "
                              f"({2 * MAX_FRAMES_K + 1} frames at most), got {self.k}")
        if self.edge not in EDGE_POLICIES:
            raise ConfigError(f"edge policy {self.edge!r} unknown; use one of {', '.join(EDGE_POLICIES)}")

    def __call__(self, n_slices: int, roi_slice: int) -> tuple[list[int], list[int], dict]:
        """(offsets, slice indices, record) for a volume of n_slices canonical slices."""
        if not 0 <= roi_slice < n_slices:
            raise RoiError(f"roi_slice {roi_slice} is outside the volume ({n_slices} sagittal slices, "
                           f"0..{n_slices - 1} from patient right to left); check roi_slice in the manifest")
        offsets, slices, beyond = [], [], []
        for offset in range(-self.k, self.k + 1):
            index = roi_slice + offset
            inside = 0 <= index < n_slices
            if not inside:
                beyond.append(offset)
            if inside or self.edge == "replicate":
                offsets.append(offset)
                slices.append(min(max(index, 0), n_slices - 1))
        record = {**self.params, "offsets": offsets, "slices": slices, "beyond_volume": beyond}
        return offsets, slices, record


@dataclass(frozen=True, kw_only=True)
class CropROI(Step):
    """The manifest box enlarged by `margin` and made square in millimetres.

    side_mm = max(box height mm, box width mm) * (1 + margin), centred on the box; in pixels the
    crop is square when the in-plane spacing is isotropic, otherwise Resize restores the aspect.
    A crop reaching outside the image is zero-padded (recorded); a box fully outside is an error.
    """

    margin: float = 0.15

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= 5:
            raise ConfigError(f"ROI margin must be between 0 and 5 (a fraction), got {self.margin}")

    def box(self, roi: Roi, spacing: tuple[float, float, float]) -> tuple[int, int, int, int]:
        """Square crop box (row_min, col_min, row_max, col_max), canonical pixels, may leave the image."""
        row_mm, col_mm = spacing[1], spacing[2]
        side = max((roi.row_max - roi.row_min) * row_mm, (roi.col_max - roi.col_min) * col_mm) * (1 + self.margin)
        n_rows, n_cols = max(1, round(side / row_mm)), max(1, round(side / col_mm))
        top = int(np.floor((roi.row_min + roi.row_max - n_rows) / 2 + 0.5))
        left = int(np.floor((roi.col_min + roi.col_max - n_cols) / 2 + 0.5))
        return top, left, top + n_rows, left + n_cols

    def __call__(self, array: np.ndarray, slices: list[int], roi: Roi,
                 spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, tuple, dict]:
        """Crops [F, h, w] of array [S, R, C] at `slices`, the valid-pixel mask [h, w], the box, a record."""
        _, n_rows, n_cols = array.shape
        where = f"rows {roi.row_min}..{roi.row_max}, columns {roi.col_min}..{roi.col_max}"
        if roi.row_min >= n_rows or roi.col_min >= n_cols:
            raise RoiError(f"ROI box {where} lies fully outside the {n_rows} x {n_cols} image (canonical display); "
                           "check the manifest ROI was drawn on this series in vcpred's canonical orientation")
        height, width = roi.row_max - roi.row_min, roi.col_max - roi.col_min
        if height > n_rows or width > n_cols:
            raise RoiError(f"the ROI box {where} ({height} x {width} pixels) is larger than the {n_rows} x {n_cols} "
                           "image; draw it around the one fractured vertebral body on this series")
        if height < MIN_ROI_PIXELS or width < MIN_ROI_PIXELS:
            raise RoiError(f"the ROI box {where} ({height} x {width} pixels) is smaller than {MIN_ROI_PIXELS} x "
                           f"{MIN_ROI_PIXELS} pixels: the crop would hold no vertebra; draw it around the whole "
                           "vertebral body")
        top, left, bottom, right = self.box(roi, spacing)
        r0, c0, r1, c1 = max(top, 0), max(left, 0), min(bottom, n_rows), min(right, n_cols)
        crops = np.zeros((len(slices), bottom - top, right - left), dtype=np.float32)
        crops[:, r0 - top:r1 - top, c0 - left:c1 - left] = array[slices, r0:r1, c0:c1]
        valid = np.zeros(crops.shape[1:], dtype=bool)
        valid[r0 - top:r1 - top, c0 - left:c1 - left] = True
        padding = {"top": r0 - top, "left": c0 - left, "bottom": bottom - r1, "right": right - c1}
        record = {**self.params, "box": [top, left, bottom, right],
                  "padded": {k: v for k, v in padding.items() if v}}
        return crops, valid, (top, left, bottom, right), record


@dataclass(frozen=True, kw_only=True)
class ResampleCrop(Step):
    """Crops resampled to square pixels of `spacing_mm` (optional; before normalisation and Resize).

    Scanners differ in in-plane resolution (0.9 against 1.1 mm pixels: 47 against 38 pixels across a
    vertebral body); Resize alone stretches each crop to the output size and keeps that difference.
    Resampled to one physical spacing first (the coarsest of the sites, so none is only interpolated),
    every crop holds the same detail. Pillow's bilinear resize, antialiased when it shrinks (as Resize);
    the valid-pixel mask follows by nearest neighbour.
    """

    spacing_mm: float

    def __post_init__(self) -> None:
        if not 0.05 <= self.spacing_mm <= 20:
            raise ConfigError(f"crop spacing must be between 0.05 and 20 mm, got {self.spacing_mm}")

    def __call__(self, crops: np.ndarray, valid: np.ndarray,
                 spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, dict]:
        """crops [F, h, w] at (row_mm, col_mm) = spacing[1:] -> crops [F, h', w'], valid [h', w'], a record."""
        from PIL import Image

        height, width = crops.shape[1:]
        rows = max(1, round(height * spacing[1] / self.spacing_mm))
        cols = max(1, round(width * spacing[2] / self.spacing_mm))
        out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32))
                                   .resize((cols, rows), Image.Resampling.BILINEAR)) for c in crops])
        mask = np.asarray(Image.fromarray(valid.astype(np.uint8)).resize((cols, rows), Image.Resampling.NEAREST)) > 0
        record = {**self.params, "from_mm": [float(spacing[1]), float(spacing[2])], "pixels": [rows, cols]}
        return out.astype(np.float32), mask, record


@dataclass(frozen=True, kw_only=True)
class Normalize(Step):
    """Per-crop intensity normalisation from the crop's own (valid) pixels.

    Clip to the `percentiles` of the crop, then z-score (mean 0, SD 1) or min-max to [0, 1]; or
    `quantile`: each pixel replaced by the standard normal quantile of its rank in the crop
    (scikit-learn's quantile_transform), so any monotone change of intensities between scanners
    (gamma, contrast, vendor scaling) gives the same crop, up to noise and resolution.
    Padded pixels take no part in the statistics (they end at the low clip value).
    """

    method: str = "zscore"
    percentiles: tuple[float, float] = (0.5, 99.5)

    def __post_init__(self) -> None:
        if self.method not in NORMALIZE_METHODS:
            raise ConfigError(f"normalisation {self.method!r} unknown; use one of {', '.join(NORMALIZE_METHODS)}")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")

    def __call__(self, crop: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, dict]:
        """crop [h, w] -> normalised float32 [h, w] and the statistics used."""
        if self.method == "quantile":
            return self._quantile(crop, valid)
        low, high = (float(v) for v in np.percentile(crop[valid], self.percentiles))
        clipped = np.clip(crop, low, high)
        values = clipped[valid]
        if self.method == "zscore":
            mean, sd = float(values.mean()), float(values.std())
            out = (clipped - mean) / sd if sd > 0 else clipped - mean
            stats: dict[str, object] = {"clip": [low, high], "mean": mean, "sd": sd}
        else:
            out = (clipped - low) / (high - low) if high > low else np.zeros_like(clipped)
            stats = {"clip": [low, high]}
        return out.astype(np.float32), {k: np.round(np.asarray(v), 5).tolist() for k, v in stats.items()}

    @staticmethod
    def _quantile(crop: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, dict]:
        from sklearn.preprocessing import quantile_transform

        values = crop[valid].reshape(-1, 1)
        mapped = quantile_transform(values, n_quantiles=min(1000, len(values)), output_distribution="normal",
                                    copy=True)[:, 0]
        out = np.full(crop.shape, mapped.min(), dtype=np.float32)  # padding at the lowest value, as clipping does
        out[valid] = mapped
        return out, {"quantiles": min(1000, len(values))}


@dataclass(frozen=True, kw_only=True)
class Resize(Step):
    """Resize square-in-mm crops to size x size pixels: bilinear with antialiasing.

    Pillow's float ("F") resize widens the bilinear kernel when shrinking; it equals torch's
    `interpolate(mode="bilinear", antialias=True)` to 1e-5 without importing torch in every worker.
    """

    size: int = 224

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 4096:
            raise ConfigError(f"size must be between 8 and 4096 pixels, got {self.size}")

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """[N, h, w] float32 -> [N, size, size] float32."""
        from PIL import Image

        out = [np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32))
                          .resize((self.size, self.size), Image.Resampling.BILINEAR)) for c in crops]
        return np.stack(out).astype(np.float32)
