"""The Starlette app: one static page and a small JSON/binary API (docs/serve.md).

Every request passes the Host allow-list and the cross-site checks first (guard.py). Blocking work
(unzipping, reading DICOM, inference) runs in the thread pool under the study's lock; errors a user
can cause answer `{"error": message}` with a 4xx status and no server path or study id in the
message (private.py), and a failed upload leaves nothing behind (its study folder is deleted).
Request bodies are typed: JSON (Content-Type application/json, at most max_json_bytes) or, for an
upload, the file's bytes (application/octet-stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vcpred import RESEARCH_NOTICE
from vcpred.errors import ConfigError, VcpredError
from vcpred.predict.bundle import Bundle
from vcpred.predict.clinical_input import form_fields
from vcpred.predict.predict import provenance_fields
from vcpred.serve import local
from vcpred.serve.errors import ServeError, TooLarge, UnsupportedUpload, status_of
from vcpred.serve.guard import InternalErrors, RequestGuard
from vcpred.serve.headers import SecurityHeaders
from vcpred.serve.inference import (PredictionGate, PredictRequest, RequestTypeError, RESULT_DIR, predict_study,
                                    result_payload, sequence_name)
from vcpred.serve.loading import READING, choose_series, load_upload
from vcpred.serve.private import scrubber
from vcpred.serve.settings import ServeSettings
from vcpred.serve.studies import Study, StudyStore

STATIC = Path(__file__).parent / "static"
DOWNLOADS = {"prediction.json": "application/json", "report.html": "text/html; charset=utf-8",
             "heatmap.png": "image/png"}
UPLOAD_TYPES = ("application/octet-stream", "application/zip", "application/x-zip-compressed", "application/gzip",
                "application/x-gzip")


def check_bundle(bundle: Bundle) -> None:
    """The viewer needs an image model reading one sequence."""
    if bundle.kind != "image":
        raise ConfigError(f"{bundle.path} is a clinical-only model; vcpred serve needs an image model "
                          "(use `vcpred predict --clinical ...` for this one)")
    sequences = bundle.prepare_params().sequences
    if sequences and len(sequences) > 1:
        raise ConfigError(f"{bundle.path} stacks {len(sequences)} sequences ({', '.join(sequences)}); vcpred "
                          "serve loads one series per study: use `vcpred predict` for this model")


def public_message(request: Request, exc: Exception, study: Study | None) -> str:
    """The error text without server paths or the study id (files named relative to the study or
    to the local folder)."""
    return scrubber(request.app.state.store, request.app.state.settings.data_dir, study).text(str(exc))


def error_response(request: Request, exc: VcpredError, study: Study | None = None) -> JSONResponse:
    return JSONResponse({"error": public_message(request, exc, study)}, status_code=status_of(exc))


async def in_study(request: Request, work):
    """Run work(study) in the thread pool under the study's lock (the study marked busy meanwhile);
    errors -> JSON 4xx."""
    store: StudyStore = request.app.state.store
    study = None
    try:
        with store.using(request.path_params["study_id"]) as study:
            def locked():
                with study.lock:
                    return work(study)
            return await run_in_threadpool(locked)
    except VcpredError as exc:
        return error_response(request, exc, study)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


async def read_json(request: Request) -> dict:
    """The body as a JSON object: Content-Type application/json, at most max_json_bytes (refused
    from Content-Length before reading, and while reading when the length is not given)."""
    if media_type(request) != "application/json":
        raise UnsupportedUpload("send the request body as JSON with Content-Type: application/json")
    limit = request.app.state.settings.max_json_bytes
    too_large = f"the JSON body is over the {limit / 1024:.0f} KB limit"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{too_large} ({int(declared)} bytes)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(too_large)
    try:
        value = json.loads(body, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ServeError("the request body must be JSON (NaN and Infinity are not JSON)") from None
    if not isinstance(value, dict):
        raise ServeError("the request body must be a JSON object")
    return value


def text_field(body: dict, name: str, what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise RequestTypeError(f"'{name}' must be {what}, not {value!r:.40}")
    return value


async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html")


async def model_info(request: Request) -> JSONResponse:
    bundle: Bundle = request.app.state.bundle
    settings: ServeSettings = request.app.state.settings
    params = bundle.prepare_params()
    return JSONResponse({
        "model_id": bundle.meta["model_id"], "configuration": bundle.meta["configuration"],
        "family": bundle.meta["family"], "splits": len(bundle.models), "threshold": bundle.threshold,
        "threshold_rule": bundle.meta["threshold_rule"], "ap": bundle.meta["ap"], "aggregate": bundle.meta["aggregate"],
        "k": params.k, "edge": params.edge, "margin": params.margin, "sequence": sequence_name(bundle),
        "clinical": form_fields(bundle), "notice": RESEARCH_NOTICE, **provenance_fields(bundle),
        "max_upload_mb": settings.max_upload_mb, "local_folder": settings.data_dir is not None})


async def new_study(request: Request, load) -> JSONResponse:
    """A new study filled by `await load(study)`; a refused or failed load leaves nothing behind."""
    store: StudyStore = request.app.state.store
    study = None
    try:
        study = store.create()
        await load(study)
        return JSONResponse(study_state(study), status_code=201)
    except VcpredError as exc:
        response = error_response(request, exc, study)
        if study is not None:
            store.close(study.id)
        return response
    except BaseException:
        if study is not None:
            store.close(study.id)
        raise
    finally:
        if study is not None:
            store.release(study)


async def upload(request: Request) -> JSONResponse:
    if media_type(request) not in UPLOAD_TYPES:
        return error_response(request, UnsupportedUpload(
            "send the file's bytes as the request body with Content-Type: application/octet-stream"))
    return await new_study(request, lambda study: load_upload(request, study, request.app.state.settings))


async def open_local(request: Request) -> JSONResponse:
    settings: ServeSettings = request.app.state.settings
    try:
        name = text_field(await read_json(request), "name", "the name of an entry of the local folder")
    except VcpredError as exc:
        return error_response(request, exc)
    return await new_study(request, lambda study: run_in_threadpool(local.open_entry, settings, name, study))


async def list_local(request: Request) -> JSONResponse:
    settings: ServeSettings = request.app.state.settings
    try:
        entries = await run_in_threadpool(local.entries, settings.data_dir) if settings.data_dir else []
    except VcpredError as exc:
        return error_response(request, exc)
    return JSONResponse({"enabled": settings.data_dir is not None, "entries": entries})


def study_state(study: Study) -> dict:
    volume = study.volume
    chosen = None
    if volume is not None:
        from vcpred.imaging.display import display_window  # the report's heat-map window

        low, high = display_window(volume.array)
        numbers = volume.provenance.get("instance_numbers") or []
        if len(numbers) != volume.shape[0] or not all(isinstance(n, int) for n in numbers):
            numbers = None  # NIfTI, or DICOM without InstanceNumber: the page shows canonical indices
        chosen = {"series": study.chosen.public(), "shape": list(volume.shape), "instance_numbers": numbers,
                  "spacing": [float(s) for s in volume.spacing], "window": {"low": low, "high": high},
                  "volume": f"/api/studies/{study.id}/volume"}
    return {"study_id": study.id, "series": [s.public() for s in study.series], "chosen": chosen}


async def get_study(request: Request) -> JSONResponse:
    return await in_study(request, lambda study: JSONResponse(study_state(study)))


async def select_series(request: Request) -> JSONResponse:
    try:
        series = text_field(await read_json(request), "series", "a series id such as 's1'")
    except VcpredError as exc:
        return error_response(request, exc)
    settings = request.app.state.settings

    def work(study: Study):
        with READING:
            choose_series(study, series, settings)
        return JSONResponse(study_state(study))
    return await in_study(request, work)


def _raw(array: np.ndarray, shape) -> Response:
    """Little-endian float32, C order; the shape travels in a header (NaN where there is no value)."""
    return Response(np.ascontiguousarray(array, dtype="<f4").tobytes(), media_type="application/octet-stream",
                    headers={"X-Shape": ",".join(str(int(n)) for n in shape)})


async def volume(request: Request) -> Response:
    return await in_study(request, lambda study: _raw(study.require_volume().array, study.volume.shape))


async def predict(request: Request) -> JSONResponse:
    bundle = request.app.state.bundle
    gate: PredictionGate = request.app.state.predictions
    try:
        predict_request = PredictRequest.from_json(await read_json(request))
    except VcpredError as exc:
        return error_response(request, exc)

    def work(study: Study):
        scrub = scrubber(request.app.state.store, request.app.state.settings.data_dir, study)
        prediction, warnings = predict_study(bundle, study, predict_request, scrub)
        study.prediction = prediction
        return JSONResponse(result_payload(study, prediction, warnings))
    try:
        with gate.admit():
            return await in_study(request, work)
    except VcpredError as exc:
        return error_response(request, exc)


async def heatmap(request: Request) -> Response:
    def work(study: Study):
        heat = study.require_prediction().heat
        if heat is None:
            raise ServeError("this prediction has no heat map")
        return _raw(heat, heat.shape)
    return await in_study(request, work)


async def download(request: Request) -> Response:
    name = request.path_params["name"]

    def work(study: Study):
        study.require_prediction()
        path = study.folder / RESULT_DIR / name
        if name not in DOWNLOADS or not path.is_file():
            raise ServeError(f"no {name} for this study")
        return Response(path.read_bytes(), media_type=DOWNLOADS[name],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return await in_study(request, work)


async def close_study(request: Request) -> JSONResponse:
    closed = await run_in_threadpool(request.app.state.store.close, request.path_params["study_id"])
    return JSONResponse({"closed": closed})


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own 404/405 (unknown page, static file or method) as JSON like every error."""
    messages = {404: "no such page or API route (docs/serve.md lists the API)",
                405: f"{request.method} is not allowed here (docs/serve.md lists the API)"}
    return JSONResponse({"error": messages.get(exc.status_code, str(exc.detail))}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def reap_forever(store: StudyStore) -> None:
    interval = min(60.0, max(store.timeout_s / 4, 0.5))
    while True:
        await asyncio.sleep(interval)
        await run_in_threadpool(store.reap)


def create_app(bundle: Bundle, settings: ServeSettings | None = None) -> Starlette:
    """The web viewer for one loaded model bundle."""
    settings = settings or ServeSettings()
    check_bundle(bundle)
    study = "/api/studies/{study_id:str}"
    routes = [
        Route("/", index), Route("/api/model", model_info), Route("/api/local", list_local),
        Route("/api/studies", upload, methods=["POST"]), Route("/api/studies/local", open_local, methods=["POST"]),
        Route(study, get_study), Route(study, close_study, methods=["DELETE"]),
        Route(f"{study}/close", close_study, methods=["POST"]),  # navigator.sendBeacon can only POST
        Route(f"{study}/series", select_series, methods=["POST"]), Route(f"{study}/volume", volume),
        Route(f"{study}/predict", predict, methods=["POST"]), Route(f"{study}/heatmap", heatmap),
        Route(study + "/{name:str}", download),
    ]
    app = viewer_app(routes, settings)
    app.state.bundle = bundle
    app.state.predictions = PredictionGate(settings.max_predictions)
    return app


def viewer_app(routes: list, settings: ServeSettings) -> Starlette:
    """The routes (and the static files) behind the guard and security headers, with a study store
    whose studies are reaped when idle and all deleted when the server stops (serve and annotate)."""
    store = StudyStore(settings.study_timeout_s, settings.workdir, settings.max_studies)  # sweeps dead servers' folders

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(reap_forever(store))
        try:
            yield
        finally:
            task.cancel()
            store.close_all()  # nothing of any patient outlives the server

    # Outermost first: every answer gets the security headers, a bug answers a JSON 500, and no
    # route runs for a foreign Host or a cross-site request.
    middleware = [Middleware(SecurityHeaders), Middleware(InternalErrors), Middleware(RequestGuard, settings=settings)]
    app = Starlette(routes=[*routes, Mount("/static", StaticFiles(directory=STATIC), name="static")],
                    lifespan=lifespan, middleware=middleware, exception_handlers={HTTPException: http_error})
    app.state.settings, app.state.store = settings, store
    return app
