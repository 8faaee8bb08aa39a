"""Properties that must hold for every input, checked with hypothesis: orientation, crop geometry,
frame selection, multiple-testing adjustments and the augmented-prediction rule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from vcpred.cohort.manifest import Roi
from vcpred.evaluate.aggregate import AGGREGATES, combine_probabilities
from vcpred.evaluate.compare import best_summary_row, bonferroni, choose_best, holm
from vcpred.evaluate.variants import Variant
from vcpred.imaging.orient import CANONICAL_CODES, axis_codes, to_canonical
from vcpred.imaging.preprocess import CropROI, SelectFrames

# Every way three stored axes can point along the patient axes: 6 permutations x 8 sign choices.
SIGNED_PERMUTATIONS = [(perm, signs) for perm in itertools.permutations(range(3))
                       for signs in itertools.product((1, -1), repeat=3)]


def stored_direction(perm: tuple[int, ...], signs: tuple[int, ...], tilt: np.ndarray) -> np.ndarray:
    """LPS direction columns: stored axis a along signs[a] * world axis perm[a], then rotated by `tilt`."""
    direction = np.zeros((3, 3))
    for axis, (world, sign) in enumerate(zip(perm, signs)):
        direction[world, axis] = sign
    return tilt @ direction


def world_positions(shape, spacing, origin, direction) -> np.ndarray:
    """LPS position of every voxel centre, [*shape, 3]."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return origin + (index * spacing) @ direction.T


small_rotation = st.builds(lambda v: Rotation.from_rotvec(v).as_matrix(),
                           st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=3).map(np.array))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SIGNED_PERMUTATIONS), small_rotation,
       st.lists(st.integers(2, 5), min_size=3, max_size=3),
       st.lists(st.floats(0.3, 5.0), min_size=3, max_size=3),
       st.lists(st.floats(-200, 200), min_size=3, max_size=3))
def test_to_canonical_keeps_every_voxel_at_its_world_position(signed, tilt, shape, spacing, origin):
    # At most 0.2 rad (about 11 degrees, 20 with all three) per axis: nearest patient axes stay unambiguous.
    perm, signs = signed
    direction = stored_direction(perm, signs, tilt)
    spacing, origin = np.array(spacing), np.array(origin)
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # every voxel unique

    volume, record = to_canonical(array, spacing, origin, direction, source="test")

    assert axis_codes(volume.direction) == CANONICAL_CODES
    before = world_positions(array.shape, spacing, origin, direction).reshape(-1, 3)
    after = world_positions(volume.shape, np.array(volume.spacing), volume.origin, volume.direction)
    after = after.reshape(-1, 3)
    # The voxel holding value v sits at the same place in the patient before and after.
    order = volume.array.ravel().astype(int)
    np.testing.assert_allclose(after, before[order], atol=1e-6)
    assert sorted(volume.array.ravel().tolist()) == array.ravel().tolist()  # nothing lost or resampled
    assert record["obliquity_deg"] <= 20.0

    again, record_again = to_canonical(volume.array, np.array(volume.spacing), volume.origin,
                                       volume.direction, source="test")
    assert record_again["permutation"] == [0, 1, 2] and record_again["flipped"] == []
    np.testing.assert_array_equal(again.array, volume.array)
    np.testing.assert_allclose(again.origin, volume.origin)


roi_boxes = st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(4, 120), st.integers(4, 120)).map(
    lambda b: Roi(slice=0, row_min=b[0], col_min=b[1], row_max=b[0] + b[2], col_max=b[1] + b[3]))


@settings(max_examples=300, deadline=None)
@given(roi_boxes, st.floats(0.0, 1.0), st.floats(0.2, 2.0), st.floats(0.2, 2.0))
def test_crop_box_contains_the_roi_is_centred_on_it_and_square_in_mm(roi, margin, row_mm, col_mm):
    top, left, bottom, right = CropROI(margin=margin).box(roi, (3.0, row_mm, col_mm))

    assert top <= roi.row_min and bottom >= roi.row_max
    assert left <= roi.col_min and right >= roi.col_max
    assert abs((top + bottom) - (roi.row_min + roi.row_max)) <= 1  # centres within half a pixel
    assert abs((left + right) - (roi.col_min + roi.col_max)) <= 1
    # Rounding each side to whole pixels moves it by at most half a pixel.
    assert abs((bottom - top) * row_mm - (right - left) * col_mm) <= (row_mm + col_mm) / 2 + 1e-9
    side = max((roi.row_max - roi.row_min) * row_mm, (roi.col_max - roi.col_min) * col_mm) * (1 + margin)
    assert abs((bottom - top) * row_mm - side) <= row_mm / 2 + 1e-9


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40), st.data(), st.integers(0, 10), st.sampled_from(["replicate", "keep"]))
def test_frames_are_the_main_slice_and_its_neighbours_inside_the_volume(n_slices, data, k, edge):
    roi_slice = data.draw(st.integers(0, n_slices - 1))
    offsets, slices, record = SelectFrames(k=k, edge=edge)(n_slices, roi_slice)

    assert offsets == sorted(offsets) and 0 in offsets
    assert slices[offsets.index(0)] == roi_slice
    assert all(0 <= s < n_slices for s in slices)
    inside = [o for o in range(-k, k + 1) if 0 <= roi_slice + o < n_slices]
    if edge == "replicate":
        assert offsets == list(range(-k, k + 1))
        assert slices == [min(max(roi_slice + o, 0), n_slices - 1) for o in offsets]
    else:
        assert offsets == inside and slices == [roi_slice + o for o in inside]
    assert record["beyond_volume"] == [o for o in range(-k, k + 1) if o not in inside]


p_value_lists = st.lists(st.one_of(st.floats(0.0, 1.0), st.just(math.nan)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(p_value_lists)
def test_holm_is_at_most_bonferroni_and_both_at_least_the_raw_p(p_values):
    adjusted_holm, adjusted_bonferroni = holm(p_values), bonferroni(p_values)
    for raw, h, b in zip(p_values, adjusted_holm, adjusted_bonferroni):
        if math.isnan(raw):
            assert math.isnan(h) and math.isnan(b)
            continue
        assert raw <= h + 1e-12 and h <= b + 1e-12 and b <= 1.0
    # Holm keeps the order of the raw p-values (it is monotone).
    finite = sorted((raw, h) for raw, h in zip(p_values, adjusted_holm) if not math.isnan(raw))
    assert [h for _, h in finite] == sorted(h for _, h in finite)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=21), st.sampled_from(AGGREGATES), st.randoms())
def test_combined_probability_lies_within_the_frames_and_ignores_their_order(frames, rule, random):
    combined = combine_probabilities(np.array(frames), rule)
    shuffled = list(frames)
    random.shuffle(shuffled)

    low, high = min(frames), max(frames)
    if rule == "logit_mean":  # 0 and 1 are clipped to 1e-6 and 1 - 1e-6 before the logit
        low, high = np.clip([low, high], 1e-6, 1 - 1e-6)
    assert low - 1e-9 <= combined <= high + 1e-9
    assert math.isclose(combine_probabilities(np.array(shuffled), rule), combined, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.5, 0.6, 0.7, 0.8]), min_size=3, max_size=3), min_size=1, max_size=5),
       st.randoms())
def test_the_best_row_of_a_summary_is_the_variant_evaluate_chooses(aucs, random):
    # Few distinct AUC values, so ties (broken by name) are common.
    variants = [Variant(f"cfg{i}", ap=bool(i % 2)) for i in range(len(aucs))]
    per_split = pd.DataFrame([{"variant": v.label, "split": s, "validation_auc": auc}
                              for v, split_aucs in zip(variants, aucs) for s, auc in enumerate(split_aucs)])
    summary = per_split.groupby("variant", as_index=False)["validation_auc"].mean().rename(
        columns={"validation_auc": "auc_mean"}).assign(set="internal")
    external = summary.assign(set="external", auc_mean=1.0)  # never chosen from: the external set measures only
    rows = pd.concat([summary, external]).sample(frac=1, random_state=random.randint(0, 1000))

    assert best_summary_row(rows)["variant"] == choose_best(per_split, variants, None).label
