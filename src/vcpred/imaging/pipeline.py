"""`prepare_patient`: one patient's images -> the model's frames, independent of any store.

Training reads prepared frames from the store; prediction calls `prepare_patient` directly with a
record built from command-line arguments, so both see exactly the same preprocessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk

from vcpred import __version__, console
from vcpred.cohort.manifest import PatientRecord
from vcpred.errors import ConfigError, ImageReadError, RoiError, VcpredError
from vcpred.imaging.io import read_volume
from vcpred.imaging.orient import Volume
from vcpred.imaging.preprocess import CropROI, N4Correct, Normalize, ResampleCrop, Resize, SelectFrames
from vcpred.imaging.quality import crop_warnings

CHANNEL_RECIPES = ("auto", "repeat", "stack")
DTYPES = ("float32", "float16")
GEOMETRY_TOLERANCE_MM = 0.1  # origins/spacings closer than this count as the same grid
OPTIONAL = {"crop_spacing_mm": None}  # parameters added later: left out of to_dict at their default


@dataclass(frozen=True, kw_only=True)
class PrepareParams:
    """Everything that decides a prepared patient (recorded in the store; part of its hash).

    sequences: manifest sequence names used as channels, the first is the reference grid
    (None: the record's first image). channels: "repeat" one sequence 3 times, "stack" one channel
    per sequence, "auto" = repeat for one sequence, stack for several. series: sequence ->
    SeriesInstanceUID or SeriesDescription for DICOM folders holding several series.
    crop_spacing_mm: resample every crop to this pixel spacing before normalising and resizing
    (preprocess.ResampleCrop); None (default): the crop keeps the image's own pixels.
    """

    k: int = 2
    edge: str = "replicate"
    margin: float = 0.15
    n4: bool = True
    n4_shrink: int = 4
    n4_iterations: tuple[int, ...] = (30, 20)
    n4_convergence: float = 1e-3
    n4_max_fit_voxels: int = 20_000
    normalize: str = "zscore"
    percentiles: tuple[float, float] = (0.5, 99.5)
    size: int = 224
    sequences: tuple[str, ...] | None = None
    channels: str = "auto"
    series: tuple[tuple[str, str], ...] = ()
    dtype: str = "float32"
    crop_spacing_mm: float | None = None

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_RECIPES:
            raise ConfigError(f"channel recipe {self.channels!r} unknown; use one of {', '.join(CHANNEL_RECIPES)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype {self.dtype!r} unknown; use one of {', '.join(DTYPES)}")
        if self.sequences is not None and len(self.sequences) == 0:
            raise ConfigError("sequences is empty; name at least one, e.g. t2")
        if self.channels == "repeat" and self.sequences and len(self.sequences) > 1:
            raise ConfigError("channel recipe 'repeat' takes one sequence; use 'stack' for several")
        self.steps()  # validate every step's parameters now, not halfway through a cohort
        self.resample_step()

    def resample_step(self) -> ResampleCrop | None:
        return None if self.crop_spacing_mm is None else ResampleCrop(spacing_mm=float(self.crop_spacing_mm))

    def steps(self) -> tuple[N4Correct | None, SelectFrames, CropROI, Normalize, Resize]:
        n4 = N4Correct(shrink_factor=self.n4_shrink, iterations=tuple(self.n4_iterations),
                       convergence=self.n4_convergence, max_fit_voxels=self.n4_max_fit_voxels) if self.n4 else None
        return (n4, SelectFrames(k=self.k, edge=self.edge), CropROI(margin=self.margin),
                Normalize(method=self.normalize, percentiles=(float(self.percentiles[0]), float(self.percentiles[1]))), Resize(size=self.size))

    def to_dict(self) -> dict:
        """As recorded in the store and the bundle; crop_spacing_mm only when set, so stores and bundles
        made before it existed keep their params (and their patients' hashes)."""
        return {k: [list(x) for x in v] if k == "series" else list(v) if isinstance(v, tuple) else v
                for k, v in asdict(self).items() if not (k in OPTIONAL and v == OPTIONAL[k])}

    @classmethod
    def from_dict(cls, data: dict) -> "PrepareParams":
        """Inverse of to_dict (missing keys take their defaults; unknown keys are a ConfigError)."""
        data = dict(data)
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown preparation parameter(s) {', '.join(unknown)}; written by a newer "
                              "vcpred? prepare the store again with this version")
        for key in ("n4_iterations", "percentiles", "sequences"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        data["series"] = tuple(tuple(x) for x in data.get("series", ()))
        return cls(**data)


@dataclass
class PreparedPatient:
    """One patient's model input and what is needed to show results on the original image.

    frames: [F, C, H, W] (float32 or float16); frame_offsets, frame_slices: [F] int (offset from
    roi_slice, canonical slice index); crop_box: (row_min, col_min, row_max, col_max) of the square
    crop in canonical pixels of every frame (may extend past the image: padded); roi_box: the
    manifest box; main_slice: [R, C] float32 reference sequence on roi_slice (after N4, before
    normalisation); spacing: (slice_mm, row_mm, col_mm); channels: sequence name per channel.
    """

    patient_id: str
    frames: np.ndarray
    frame_offsets: np.ndarray
    frame_slices: np.ndarray
    crop_box: np.ndarray
    roi_box: np.ndarray
    roi_slice: int
    main_slice: np.ndarray
    spacing: tuple[float, float, float]
    channels: list[str]
    provenance: dict = field(default_factory=dict)

    @property
    def frame_boxes(self) -> np.ndarray:
        """[F, 5] int32: (slice, row_min, col_min, row_max, col_max) of each frame's crop in the
        canonical volume: resize a [H, W] heat map to the box to paste it back."""
        boxes = np.tile(self.crop_box.astype(np.int32), (len(self.frame_slices), 1))
        return np.column_stack([self.frame_slices.astype(np.int32), boxes])


def chosen_sequences(record: PatientRecord, params: PrepareParams) -> list[str]:
    names = list(params.sequences or list(record.images)[:1])
    missing = [s for s in names if s not in record.images]
    if missing:
        raise ConfigError(f"patient {record.patient_id!r}: no image for sequence(s) {', '.join(missing)} "
                          f"(the manifest has: {', '.join(record.images) or 'none'}); check --sequences")
    return names


def same_grid(a: Volume, b: Volume) -> bool:
    return (a.shape == b.shape and np.allclose(a.spacing, b.spacing, atol=1e-3)
            and np.allclose(a.origin, b.origin, atol=GEOMETRY_TOLERANCE_MM)
            and np.allclose(a.direction, b.direction, atol=1e-3))


def resample_onto(moving: Volume, reference: Volume) -> Volume:
    """moving resampled (linear) onto reference's grid; outside its field of view -> 0."""
    out = sitk.Resample(moving.to_sitk(), reference.to_sitk(), sitk.Transform(), sitk.sitkLinear, 0.0)
    volume = reference.with_array(sitk.GetArrayFromImage(out))
    volume.provenance = dict(moving.provenance)
    return volume


def check_not_blank(volume: Volume, path) -> None:
    """A volume whose voxels all hold one value has nothing to predict from (e.g. pixel data lost
    in an export): refused rather than turned into all-zero frames and a confident prediction."""
    low, high = float(volume.array.min()), float(volume.array.max())
    if low == high:
        raise ImageReadError(f"{path}: the image is blank: every voxel is {low:g}; check that this is the "
                             "right series and that it was exported with its pixel data")


def check_contrast(crops: np.ndarray, valid: np.ndarray, slices: list[int], main: int, percentiles) -> None:
    """Every frame's crop must vary within the normalisation's clip range; a constant crop would become
    an all-zero frame (and a prediction about nothing). The main slice is checked (and named) first."""
    for crop, index in sorted(zip(crops, slices), key=lambda pair: abs(pair[1] - main)):
        pixels = crop[valid]
        low, high = np.percentile(pixels, percentiles)
        if high > low:
            continue
        what = (f"constant (every pixel {float(pixels[0]):g})" if pixels.min() == pixels.max() else
                f"almost constant (at least {percentiles[1] - percentiles[0]:g} % of its pixels are {float(low):g})")
        raise RoiError(f"the crop around the ROI on slice {index} is {what}: there is nothing in it for the model "
                       "to see; check roi_slice and the ROI box are on the fractured vertebra of this series")


def read_sequences(record: PatientRecord, params: PrepareParams) -> dict[str, Volume]:
    """Canonical volume per sequence, all on the first sequence's grid (resampled where needed).
    The series read from a DICOM folder: the patient's own (manifest series_<sequence>), else --series."""
    series = {**dict(params.series), **record.series}
    volumes: dict[str, Volume] = {}
    for name in chosen_sequences(record, params):
        volume = read_volume(record.images[name], series=series.get(name))
        check_not_blank(volume, record.images[name])
        if volumes:
            reference_name, reference = next(iter(volumes.items()))
            if not same_grid(volume, reference):
                volume = resample_onto(volume, reference)
                volume.provenance["resampled_onto"] = reference_name
        volumes[name] = volume
    return volumes


def prepare_patient(record: PatientRecord, params: PrepareParams | None = None) -> PreparedPatient:
    """Read, N4-correct, crop, normalise and resize one patient's frames.

    Raises VcpredError subclasses whose message starts with the patient id.
    """
    params = params or PrepareParams()
    try:
        return _prepare(record, params)
    except VcpredError as exc:
        if str(exc).startswith(f"patient {record.patient_id!r}"):
            raise
        raise type(exc)(f"patient {record.patient_id!r}: {exc}") from None


def _channel(volume: Volume, slices: list[int], record: PatientRecord,
             params: PrepareParams) -> tuple[np.ndarray, Volume, list[dict]]:
    """One sequence -> frames [F, size, size], the (N4-corrected) slab of slices min..max(slices)
    as a Volume, the steps applied."""
    n4, _, crop, normalize, resize = params.steps()
    first, last = min(slices), max(slices)
    steps = []
    if n4 is not None:
        volume, applied = n4(volume)
        steps.append({"step": "N4Correct", **applied})
    volume = volume.slab(first, last)  # all the frames and the main slice need
    local = [s - first for s in slices]
    crops, valid, _, crop_record = crop(volume.array, local, record.roi, volume.spacing)
    check_contrast(crops, valid, slices, record.roi.slice, normalize.percentiles)
    steps.append({"step": "CropROI", **crop_record})
    resample = params.resample_step()
    if resample is not None:
        crops, valid, resample_record = resample(crops, valid, volume.spacing)
        steps.append({"step": "ResampleCrop", **resample_record})
    normalized, stats = zip(*(normalize(c, valid) for c in crops))
    steps += [{"step": "Normalize", **normalize.params, "per_frame": list(stats)},
              {"step": "Resize", **resize.params}]
    return resize(np.stack(normalized)), volume, steps


def quality_warnings(volume: Volume, record: PatientRecord, params: PrepareParams) -> list[str]:
    """vcpred.imaging.quality's warnings for the main frame's crop, on the volume as read (before N4:
    saturation is judged on the stored values)."""
    crop = params.steps()[2]
    crops, valid, box, _ = crop(volume.array, [record.roi.slice], record.roi, volume.spacing)
    return crop_warnings(crops[0], valid, volume.array[record.roi.slice], float(volume.array.max()), box,
                         record.roi.box, params.size)


def _warnings(record: PatientRecord, crop_record: dict, frames_record: dict, edge: str,
              quality: list[str]) -> list[str]:
    warnings = []
    if crop_record["padded"]:
        warnings.append(f"crop box {crop_record['box']} reaches outside the image; zero-padded "
                        f"{crop_record['padded']} pixels")
    if frames_record["beyond_volume"]:
        warnings.append(f"frame offsets {frames_record['beyond_volume']} fall outside the volume "
                        f"(edge policy {edge!r})")
    warnings += quality
    for message in warnings:
        console.warn(f"patient {record.patient_id!r}: {message}")
    return warnings


def _prepare(record: PatientRecord, params: PrepareParams) -> PreparedPatient:
    volumes = read_sequences(record, params)
    reference = next(iter(volumes.values()))
    offsets, slices, frames_record = params.steps()[1](reference.shape[0], record.roi.slice)
    channels, sequences = [], {}
    for name, volume in volumes.items():
        stack, corrected, steps = _channel(volume, slices, record, params)
        channels.append(stack)
        sequences[name] = {**volume.provenance, "steps": steps}
        if len(sequences) == 1:
            main_slice = corrected.array[record.roi.slice - min(slices)].astype(np.float32)
    crop_record = next(s for s in steps if s["step"] == "CropROI")
    quality = quality_warnings(reference, record, params)
    warnings = _warnings(record, crop_record, frames_record, params.edge, quality)
    names = list(volumes)
    if params.channels == "repeat" or (params.channels == "auto" and len(names) == 1):
        channels, names = channels[:1] * 3, names[:1] * 3
    provenance = {"patient_id": record.patient_id, "vcpred_version": __version__,
                  "params": params.to_dict(), "roi_slice": record.roi.slice, "roi": list(record.roi.box),
                  "frames": frames_record, "channels": names, "sequences": sequences, "warnings": warnings}
    return PreparedPatient(
        patient_id=record.patient_id, frames=np.stack(channels, axis=1).astype(params.dtype),
        frame_offsets=np.array(offsets, dtype=np.int32), frame_slices=np.array(slices, dtype=np.int32),
        crop_box=np.array(crop_record["box"], dtype=np.int32),
        roi_box=np.array(record.roi.box, dtype=np.int32), roi_slice=record.roi.slice,
        main_slice=main_slice, spacing=reference.spacing, channels=names, provenance=provenance)
