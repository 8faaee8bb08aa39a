"""The page's frame and crop geometry (serve/static/geometry.js) equals the pipeline's
(SelectFrames, CropROI.box) on shared vectors, run in headless Chromium on the module as the viewer
serves it: what the page shows as the model's frames and crop is what `prepare` and `predict` cut.
(tests/test_serve_modules.py checks that the page takes its frames and crop from this module.)"""

from __future__ import annotations

import random

from browser import chromium_driver, page_module, require_chromium
from test_serve_browser import serving, settings
from vcpred.cohort.manifest import Roi
from vcpred.imaging.preprocess import CropROI, SelectFrames
from vcpred.serve.viewer import viewer_app


def crop_vectors(count: int = 400) -> list[dict]:
    """Random boxes, spacings and margins, plus cases whose side lands exactly on half a pixel
    (where JavaScript's Math.round and Python's round differ)."""
    rng = random.Random(7)
    cases = [{"box": [10, 20, 30, 45], "spacing": [3.0, 1.0, 1.0], "margin": m} for m in (0.05, 0.25, 0.5)]
    cases += [{"box": [0, 0, 5, 5], "spacing": [3.0, 1.0, 1.0], "margin": 0.5},  # side 7.5 -> 8 (even)
              {"box": [0, 0, 3, 3], "spacing": [3.0, 1.0, 1.0], "margin": 0.5}]  # side 4.5 -> 4 (even)
    for _ in range(count):
        r0, c0 = rng.randint(0, 300), rng.randint(0, 300)
        box = [r0, c0, r0 + rng.randint(4, 120), c0 + rng.randint(4, 120)]
        spacing = [3.0, rng.choice([0.5, 0.625, 0.9375, 1.0, 1.2]), rng.choice([0.5, 0.625, 0.9375, 1.0, 1.2])]
        cases.append({"box": box, "spacing": spacing, "margin": rng.choice([0.0, 0.1, 0.15, 0.2, 0.5, 1.0])})
    for case in cases:
        roi = Roi(0, case["box"][0], case["box"][1], case["box"][2], case["box"][3])
        case["python"] = list(CropROI(margin=case["margin"]).box(roi, tuple(case["spacing"])))
    return cases


def frame_vectors() -> list[dict]:
    cases = []
    for slices in (1, 3, 12):
        for roi_slice in range(slices):
            for k in (0, 1, 2, 4):
                for edge in ("replicate", "keep"):
                    offsets, indices, _ = SelectFrames(k=k, edge=edge)(slices, roi_slice)
                    cases.append({"slices": slices, "roi": roi_slice, "k": k, "edge": edge,
                                  "python": [[o, i] for o, i in zip(offsets, indices)]})
    return cases


def test_the_page_cuts_the_same_crop_and_frames_as_the_pipeline(tmp_path):
    require_chromium()
    crops, frames = crop_vectors(), frame_vectors()
    expression = """[args[0].map((c) => m.cropSquare(c.box, c.spacing, c.margin)),
                     args[1].map((f) => m.selectFrames(f.slices, f.roi, f.k, f.edge).map((x) => [x.offset, x.slice]))]"""
    with serving(viewer_app([], settings(tmp_path))) as (url, _), chromium_driver() as driver:
        driver.get(url + "static/style.css")  # any page of the server's origin: the module is imported from there
        page_crops, page_frames = page_module(driver, "geometry", expression, crops, frames)

    assert [c["python"] for c in crops] == page_crops
    assert [f["python"] for f in frames] == page_frames
    assert len({tuple(c["python"]) for c in crops}) > 300
