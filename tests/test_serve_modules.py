"""The viewer's front end as ES modules (issue 16): the scripts are served as JavaScript whatever the
system's MIME table says, under a CSP that allows only same-origin scripts (no inline script, no
eval); every module of static/ loads in Chromium without a console error; and the page takes the
model's frames and crop from geometry.js, the one module tested against the pipeline
(test_serve_geometry.py): a page served with another geometry.js shows that module's frames and
crop, so no module can hold a copy of its own.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from browser import chromium_driver, console_errors, page_module, require_chromium
from test_annotate import cohort, synthetic  # noqa: F401 (fixtures)
from test_annotate_browser import type_roi, wait_for_patient
from test_serve_browser import serving, settings, wait_for
from vcpred.cohort.manifest import Roi
from vcpred.imaging.pipeline import PrepareParams
from vcpred.imaging.preprocess import CropROI, SelectFrames
from vcpred.serve import viewer
from vcpred.serve.annotate_app import create_annotate_app
from vcpred.serve.annotate_session import AnnotateSession
from vcpred.serve.headers import CSP
from vcpred.serve.settings import ServeSettings

STATIC = viewer.STATIC
MODULES = sorted(p.name for p in STATIC.glob("*.js"))
GEOMETRY = ("selectFrames", "cropSquare", "roundHalfEven")


def static_copy(tmp_path: Path, monkeypatch, **modules: str) -> Path:
    """The viewer serving a copy of static/ with these modules' text replaced (name without .js)."""
    folder = tmp_path / "static-copy"
    shutil.copytree(STATIC, folder)
    for name, text in modules.items():
        (folder / f"{name}.js").write_text(text)
    monkeypatch.setattr(viewer, "STATIC", folder)
    return folder


def test_scripts_are_served_as_javascript_under_a_same_origin_script_policy(tmp_path, monkeypatch):
    from starlette import responses

    # A system table that maps .js to text/plain (the Windows registry often does): still JavaScript.
    monkeypatch.setattr(responses, "guess_type", lambda *args, **kwargs: ("text/plain", None))
    app = viewer.viewer_app([], ServeSettings(workdir=tmp_path, port=8000))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        for name in MODULES:
            answer = client.get(f"/static/{name}")
            assert answer.status_code == 200, name
            assert answer.headers["content-type"] == "text/javascript; charset=utf-8", name
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert client.get("/static/style.css").headers["content-type"] == "text/css; charset=utf-8"
    directives = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert directives["script-src"] == "'self'" and "unsafe" not in CSP  # modules of this origin, nothing inline
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", page) == ['<script type="module" src="/static/app.js">']
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    for name in MODULES:  # no eval (the CSP would refuse it), no HTML from data, no globals
        text = (STATIC / name).read_text()
        assert not re.search(r"\beval\(|new Function|innerHTML|setTimeout\(['\"]", text), name
        assert not re.search(r"\bwindow\.\w+\s*=[^=]", text), name


def test_every_module_loads_without_a_console_error(cohort, tmp_path, monkeypatch):  # noqa: F811
    """The annotate page (no model needed) imports every module of static/ and logs no error; a
    module that does not load is caught (the same page with a broken one)."""
    require_chromium()
    with chromium_driver(width=1366, height=900) as driver:
        app = create_annotate_app(AnnotateSession.open(cohort), settings(tmp_path))
        with serving(app) as (url, _):
            driver.get(url)
            wait_for_patient(driver, 0)
            type_roi(driver, [5, 10, 12, 30, 40])
            wait_for(driver, lambda d: d.find_elements("css selector", "#frames .frame"))
            assert console_errors(driver) == []
            loaded = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
            assert sorted({Path(name).name for name in loaded if "/static/" in name and name.endswith(".js")}) \
                == MODULES
        static_copy(tmp_path, monkeypatch, names="export const percent = ;\n")
        app = create_annotate_app(AnnotateSession.open(cohort), settings(tmp_path))
        with serving(app) as (url, _):
            driver.get(url)
            wait_for(driver, lambda d: console_errors(d) or None, timeout=20)
            assert driver.find_element("id", "progress").text == ""  # nothing ran


def shown_frames(driver) -> tuple[list[list[int]], list[int]]:
    """The strip's frames as [offset, slice] and the crop it drew."""
    cells = driver.find_elements("css selector", "#frames .frame")
    frames = [[int(c.get_attribute("data-offset")), int(c.get_attribute("data-slice"))] for c in cells]
    return frames, [int(v) for v in driver.find_element("id", "frames").get_attribute("data-crop").split(",")]


# geometry.js as a test would replace it: one frame, the ROI slice, and a fixed crop.
OTHER_GEOMETRY = """
export function roundHalfEven(x) { return Math.round(x); }
export function selectFrames(slices, roiSlice, k, edge) { return [{offset: 0, slice: roiSlice, edge: false}]; }
export function cropSquare(box, spacing, margin) { return [1, 2, 30, 40]; }
"""


def test_the_page_takes_the_frames_and_the_crop_from_geometry_js(cohort, tmp_path, monkeypatch):  # noqa: F811
    require_chromium()
    roi_slice, box = 5, [10, 12, 30, 40]
    params = PrepareParams()
    with chromium_driver(width=1366, height=900) as driver:
        app = create_annotate_app(AnnotateSession.open(cohort), settings(tmp_path))
        with serving(app) as (url, _):
            driver.get(url)
            wait_for_patient(driver, 0)
            type_roi(driver, [roi_slice, *box])
            volume = app.state.store.get(page_module(driver, "state", "m.state.study")).volume
            frames, crop = shown_frames(driver)
        offsets, indices, _ = SelectFrames(k=params.k, edge=params.edge)(volume.shape[0], roi_slice)
        assert frames == [[o, i] for o, i in zip(offsets, indices)] and len(frames) == 2 * params.k + 1
        assert crop == list(CropROI(margin=params.margin).box(Roi(roi_slice, *box), tuple(volume.spacing)))

        static_copy(tmp_path, monkeypatch, geometry=OTHER_GEOMETRY)
        app = create_annotate_app(AnnotateSession.open(cohort), settings(tmp_path))
        with serving(app) as (url, _):
            driver.get(url)
            wait_for_patient(driver, 0)
            type_roi(driver, [roi_slice, *box])
            assert shown_frames(driver) == ([[0, roi_slice]], [1, 2, 30, 40])
            assert console_errors(driver) == []


@pytest.mark.parametrize("name", [m for m in MODULES if m != "geometry.js"])
def test_no_other_module_defines_frame_or_crop_geometry(name):
    """A supplement to the behavioural test above: the geometry's names are defined in geometry.js
    only, and a module using them imports them from it."""
    text = (STATIC / name).read_text()
    for function in GEOMETRY:
        assert not re.search(rf"(function\s+{function}\b|\b{function}\s*=)", text), (name, function)
    used = [f for f in GEOMETRY if re.search(rf"\b{f}\(", text)]
    if used:
        imported = re.search(r'import\s*\{([^}]*)\}\s*from\s*"\./geometry\.js"', text)
        assert imported and set(used) <= {n.strip() for n in imported.group(1).split(",")}, name
