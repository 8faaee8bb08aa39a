"""The preprocessing steps: N4, frame selection, ROI crop, normalisation, resize."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_support import small_volume
from vcpred.cohort import Roi
from vcpred.errors import ConfigError, RoiError
from vcpred.imaging import CropROI, N4Correct, Normalize, Resize, SelectFrames
from vcpred.imaging.orient import Volume

BODY_BOX = (slice(4, 8), slice(50, 60), slice(34, 58))  # inside the body at rows 48..64 of the phantom


def spine_phantom(seed: int = 0, shape=(12, 96, 96)) -> Volume:
    """Piecewise-constant sagittal spine (bodies 100, discs 180, CSF 220, soft tissue 60) + noise."""
    n_slices, n_rows, _ = shape
    rng = np.random.default_rng(seed)
    array = np.full(shape, 5.0, np.float32)
    array[:, :, 8:88] = 60
    for top in range(4, n_rows - 10, 22):
        array[2:n_slices - 2, top:top + 16, 30:62] = 100
        array[2:n_slices - 2, top + 16:top + 22, 32:60] = 180
    array[2:n_slices - 2, :, 66:72] = 220
    array += rng.normal(0, 3, shape).astype(np.float32)
    return Volume(np.clip(array, 0, None), (3.0, 1.0, 1.0), np.zeros(3),
                  np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]))


def planted_bias(shape) -> np.ndarray:
    """Smooth multiplicative field (about 0.6..1.6 over the volume, +-10 % across one body)."""
    s, r, c = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    field = np.exp(0.6 * np.sin(np.pi * r / shape[1] / 1.2) + 0.5 * (c / shape[2] - 0.5) + 0.1 * s / shape[0])
    return (field / field.mean()).astype(np.float32)


def cv(array: np.ndarray) -> float:
    values = array[BODY_BOX]
    return float(values.std() / values.mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_n4_reduces_planted_bias_inside_a_vertebral_body(seed):
    clean = spine_phantom(seed)
    biased = clean.with_array(clean.array * planted_bias(clean.shape))
    corrected, record = N4Correct()(biased)
    before, after, truth = cv(biased.array), cv(corrected.array), cv(clean.array)
    print(f"CV inside the body: clean {truth:.4f}, biased {before:.4f}, after N4 {after:.4f}")
    assert before > 1.5 * truth  # the planted field dominates the body's variation
    assert after < 0.75 * before and after < 1.25 * truth
    assert record["shrink_per_axis"] == [1, 4, 4]  # 3 mm slices are not shrunk, 1 mm pixels by 4
    assert record["iterations"] == [30, 20] and 0 < record["mask_fraction"] < 1


def test_n4_leaves_blank_volume_alone():
    volume = small_volume()
    blank = volume.with_array(np.zeros(volume.shape, np.float32))
    out, record = N4Correct()(blank)
    assert record["skipped"] and np.array_equal(out.array, blank.array)


@pytest.mark.parametrize("kwargs", [dict(shrink_factor=0), dict(iterations=()), dict(convergence=2.0)])
def test_n4_validates_eagerly(kwargs):
    with pytest.raises(ConfigError):
        N4Correct(**kwargs)


def test_select_frames_edge_policies():
    offsets, slices, record = SelectFrames(k=2)(10, 1)
    assert offsets == [-2, -1, 0, 1, 2] and slices == [0, 0, 1, 2, 3] and record["beyond_volume"] == [-2]
    offsets, slices, record = SelectFrames(k=2, edge="keep")(10, 9)
    assert offsets == [-2, -1, 0] and slices == [7, 8, 9] and record["beyond_volume"] == [1, 2]
    assert SelectFrames(k=0)(10, 4)[:2] == ([0], [4])
    with pytest.raises(RoiError, match="roi_slice 10 is outside the volume"):
        SelectFrames()(10, 10)
    with pytest.raises(ConfigError):
        SelectFrames(edge="wrap")


def test_crop_is_square_in_mm_and_centred():
    crop = CropROI(margin=0.15)
    assert crop.box(Roi(0, 10, 20, 30, 60), (3.0, 1.0, 1.0)) == (-3, 17, 43, 63)  # 40 mm * 1.15 = 46
    # Anisotropic pixels: 0.5 mm rows, 1 mm columns -> twice as many rows as columns.
    top, left, bottom, right = crop.box(Roi(0, 40, 20, 80, 40), (3.0, 0.5, 1.0))
    assert (bottom - top) * 0.5 == pytest.approx((right - left) * 1.0, abs=0.5)
    assert (top + bottom) / 2 == pytest.approx(60, abs=0.5) and (left + right) / 2 == pytest.approx(30, abs=0.5)


def test_crop_pads_a_box_partly_outside_and_records_it():
    array = np.arange(2 * 20 * 30, dtype=np.float32).reshape(2, 20, 30) + 1
    crops, valid, box, record = CropROI(margin=0.0)(array, [1, 0], Roi(1, 0, 20, 10, 30), (1.0, 1.0, 1.0))
    assert box == (0, 20, 10, 30) and not record["padded"]
    crops, valid, box, record = CropROI(margin=0.0)(array, [1, 0], Roi(1, 15, 25, 25, 35), (1.0, 1.0, 1.0))
    assert box == (15, 25, 25, 35) and record["padded"] == {"bottom": 5, "right": 5}
    np.testing.assert_array_equal(crops[0][:5, :5], array[1, 15:20, 25:30])
    assert crops.shape == (2, 10, 10) and not valid[5:].any() and (crops[:, 5:] == 0).all()


def test_crop_fully_outside_is_an_error():
    with pytest.raises(RoiError, match="fully outside the 20 x 30 image"):
        CropROI()(np.zeros((2, 20, 30), np.float32), [0], Roi(0, 25, 5, 40, 20), (1.0, 1.0, 1.0))


def test_normalize_uses_only_valid_pixels():
    rng = np.random.default_rng(0)
    crop = rng.normal(50, 10, (20, 20)).astype(np.float32)
    valid = np.ones_like(crop, dtype=bool)
    valid[:, 15:] = False
    crop[:, 15:] = 0  # padding must not drag the statistics down
    out, stats = Normalize(method="zscore")(crop, valid)
    assert abs(out[valid].mean()) < 1e-5 and out[valid].std() == pytest.approx(1, abs=1e-4)
    assert np.allclose(out[~valid], out[valid].min())  # padding ends at the low clip value
    out, stats = Normalize(method="minmax", percentiles=(0, 100))(crop, valid)
    assert out[valid].min() == 0 and out[valid].max() == pytest.approx(1)
    assert stats["clip"] == pytest.approx([crop[valid].min(), crop[valid].max()], abs=1e-4)


def test_quantile_normalisation_removes_a_scanners_monotone_contrast_change():
    """A crop and the same crop under another gamma and vendor scale (site D's kind of change) give the
    same quantile-normalised crop; z-scoring leaves them apart. Ranks mapped to normal quantiles:
    recomputed here with scipy."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    crop = rng.uniform(0.05, 1.0, (30, 30)).astype(np.float32)
    valid = np.ones_like(crop, dtype=bool)
    valid[:, 25:] = False
    other_site = 3000.0 * crop ** 0.8  # gamma 0.8, another dynamic range
    quantile = Normalize(method="quantile")
    ours, stats = quantile(crop, valid)
    theirs, _ = quantile(other_site, valid)
    assert np.allclose(ours, theirs, atol=1e-5) and stats == {"quantiles": 750}
    zscored = [Normalize(method="zscore")(c, valid)[0] for c in (crop, other_site)]
    assert np.abs(zscored[0] - zscored[1])[valid].max() > 0.1
    ranks = rankdata(crop[valid])
    expected = ndtri((ranks - 1) / (len(ranks) - 1) * (1 - 2e-7) + 1e-7)  # sklearn's clipped quantiles
    assert np.corrcoef(ours[valid], expected)[0, 1] > 0.999 and abs(ours[valid].mean()) < 0.01
    assert ours[valid].std() == pytest.approx(1, abs=0.05)
    assert np.allclose(ours[~valid], ours[valid].min())  # padding at the lowest value
    with pytest.raises(ConfigError, match="quantile"):
        Normalize(method="rank")


def test_resize_antialiases_and_keeps_range():
    stripes = np.zeros((1, 100, 100), np.float32)
    stripes[:, :, ::2] = 1  # 1-pixel stripes: aliasing would give 0s or 1s, antialiasing ~0.5
    out = Resize(size=20)(stripes)
    assert out.shape == (1, 20, 20) and np.allclose(out, 0.5, atol=0.05)
    with pytest.raises(ConfigError):
        Resize(size=2)


def test_resize_matches_torch_antialiased_bilinear():
    torch = pytest.importorskip("torch")
    crops = np.random.default_rng(0).normal(size=(2, 37, 45)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(crops)[:, None], size=(24, 24), mode="bilinear",
                                               align_corners=False, antialias=True)[:, 0].numpy()
    np.testing.assert_allclose(Resize(size=24)(crops), expected, atol=1e-5)
