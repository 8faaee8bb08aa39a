"""The model-free part of the web viewer: the app shell (guard, security headers, static page,
study store) and the study routes every mode shares (open, read the volume, close), used by
`vcpred serve` (app.py adds the model's routes) and `vcpred annotate` (annotate_app.py).

Every request passes the Host allow-list and the cross-site checks first (guard.py). Blocking work
(unzipping, reading DICOM) runs in the thread pool under the study's lock; errors a user can cause
answer `{"error": message}` with a 4xx status and no server path or study id in the message
(private.py), and a failed load leaves nothing behind (its study folder is deleted). Request bodies
are typed: JSON (Content-Type application/json, at most max_json_bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from vcpred.errors import VcpredError
from vcpred.serve.errors import RequestTypeError, ServeError, TooLarge, UnsupportedUpload, status_of
from vcpred.serve.guard import InternalErrors, RequestGuard
from vcpred.serve.headers import SecurityHeaders
from vcpred.serve.private import scrubber
from vcpred.serve.settings import ServeSettings
from vcpred.serve.studies import Study, StudyStore
from vcpred.serve.uploads import body_chunks

STATIC = Path(__file__).parent / "static"

# The page's scripts are ES modules: a browser runs a module only when it is served with a JavaScript
# MIME type, and nosniff holds scripts and style sheets to theirs. Python's table comes partly from the
# system (/etc/mime.types, the Windows registry: .js as text/plain there), so these are fixed here.
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class PageFiles(StaticFiles):
    """The static page files, .js and .css with their own MIME types whatever the system's table says."""

    def file_response(self, full_path, stat_result, scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media = STATIC_TYPES.get(Path(full_path).suffix)
        if media and "content-type" in response.headers:
            response.headers["content-type"] = media
        return response


def public_message(request: Request, exc: Exception, study: Study | None) -> str:
    """The error text without server paths or the study id (files named relative to the study or
    to the local folder)."""
    return scrubber(request.app.state.store, request.app.state.settings.data_dir, study).text(str(exc))


def error_response(request: Request, exc: VcpredError, study: Study | None = None) -> JSONResponse:
    status = status_of(exc)
    closing = {"Connection": "close"} if status == 408 else None  # the rest of a stalled body is not awaited
    return JSONResponse({"error": public_message(request, exc, study)}, status_code=status, headers=closing)


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


class DuplicateKey(ServeError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are all different: json's default keeps the last of a repeated key
    silently, so {"slice": 3, "slice": 9} would mean whatever the reader happens to take."""
    value: dict = {}
    for key, item in pairs:
        if key in value:
            raise DuplicateKey(f"the request body's JSON names {key[:40]!r} twice (duplicate key); send each key once")
        value[key] = item
    return value


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
    async for chunk in body_chunks(request, request.app.state.settings):
        body += chunk
        if len(body) > limit:
            raise TooLarge(too_large)
    try:
        value = json.loads(body, parse_constant=_not_json, object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError):  # not DuplicateKey: that is no ValueError
        raise ServeError("the request body must be JSON (NaN and Infinity are not JSON)") from None
    if not isinstance(value, dict):
        raise ServeError("the request body must be a JSON object")
    return value


def text_field(body: dict, name: str, what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise RequestTypeError(f"'{name}' must be {what}, not {value!r:.40}")
    return value


async def new_study(request: Request, load, receive=None) -> JSONResponse:
    """A new study filled by `await load(study)`; a refused or failed load leaves nothing behind.
    receive: `await receive(folder)` first puts the request body into the study's folder; the study
    counts against --max-studies only once it has arrived (a stalled client holds no slot)."""
    store: StudyStore = request.app.state.store
    study = folder = None
    try:
        if receive is not None:
            folder = store.new_folder()
            await receive(folder)
        study = store.create(folder)
        await load(study)
        return JSONResponse(study_state(study), status_code=201)
    except VcpredError as exc:
        response = error_response(request, exc, study)
        _forget(store, study, folder)
        return response
    except BaseException:
        _forget(store, study, folder)
        raise
    finally:
        if study is not None:
            store.release(study)


def _forget(store: StudyStore, study: Study | None, folder: Path | None) -> None:
    if study is not None:
        store.close(study.id)
    elif folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


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


def raw_response(array: np.ndarray, shape) -> Response:
    """Little-endian float32, C order; the shape travels in a header (NaN where there is no value)."""
    return Response(np.ascontiguousarray(array, dtype="<f4").tobytes(), media_type="application/octet-stream",
                    headers={"X-Shape": ",".join(str(int(n)) for n in shape)})


async def volume(request: Request) -> Response:
    return await in_study(request, lambda study: raw_response(study.require_volume().array, study.volume.shape))


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
    app = Starlette(routes=[*routes, Mount("/static", PageFiles(directory=STATIC), name="static")],
                    lifespan=lifespan, middleware=middleware, exception_handlers={HTTPException: http_error})
    app.state.settings, app.state.store = settings, store
    return app
