"""The viewer in annotation mode (`vcpred annotate`, docs/annotate.md): no model; the cohort's
patients one by one, each save writing that patient's ROI into the manifest.

The page, the guard (Host allow-list, cross-site checks, body limits), the study store and the
volume routes are those of `vcpred serve` (app.py); the page switches to annotation mode from the
`data-mode` attribute this app puts on its <body>.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from vcpred.errors import VcpredError
from vcpred.imaging.pipeline import PrepareParams
from vcpred.serve.annotate_review import Thumbnails
from vcpred.serve.annotate_session import AnnotateSession
from vcpred.serve.errors import RequestTypeError
from vcpred.serve.roi import read_roi, whole_number
from vcpred.serve.viewer import STATIC, close_study, error_response, get_study, new_study, read_json, viewer_app, volume
from vcpred.serve.loading import READING
from vcpred.serve.settings import ServeSettings

BODY = '<body data-state="empty">'


def annotate_page() -> str:
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    if BODY not in page:  # the page was edited: annotation mode would silently not start
        raise RuntimeError(f"index.html has no {BODY!r} to mark annotation mode on")
    return page.replace(BODY, '<body data-state="empty" data-mode="annotate">', 1)


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(annotate_page())


def session_state(session: AnnotateSession) -> dict:
    """The patients and progress, and the frames `vcpred prepare` reads by default (the page's strip)."""
    params = PrepareParams()
    return {**session.public(), "k": params.k, "edge": params.edge, "margin": params.margin}


async def state(request: Request) -> JSONResponse:
    return JSONResponse(session_state(request.app.state.session))


async def open_patient(request: Request) -> JSONResponse:
    session: AnnotateSession = request.app.state.session
    index, settings = request.path_params["index"], request.app.state.settings

    def load(study):
        with study.lock, READING:
            session.load(index, study, settings)
    answer = await new_study(request, lambda study: run_in_threadpool(load, study))
    if answer.status_code != 201:
        return answer
    # The study, and the patient as its image was read (the identity check: the page shows the warning).
    return JSONResponse({**json.loads(answer.body), "patient": session.patient(index).public()}, status_code=201)


async def thumbnail(request: Request) -> Response:
    """The review pass's PNG of one patient's saved box (annotate_review.Thumbnails)."""
    thumbnails: Thumbnails = request.app.state.thumbnails
    try:
        data = await run_in_threadpool(thumbnails.png, request.path_params["index"])
    except VcpredError as exc:
        return error_response(request, exc)
    return Response(data, media_type="image/png")


async def series_choices(request: Request) -> JSONResponse:
    session: AnnotateSession = request.app.state.session
    try:
        choices = await run_in_threadpool(session.series_choices, request.path_params["index"])
    except VcpredError as exc:
        return error_response(request, exc)
    return JSONResponse(choices)


def row_version(body: dict) -> int:
    """The row version a save names: the one the page read with the patient, so a stale save is refused."""
    return whole_number(body.get("version"), "'version' must be the whole number the page read with the "
                                             "patient (GET /api/annotate), so that a stale save is refused")


async def choose_series(request: Request) -> JSONResponse:
    """Write the patient's series choice into the manifest (annotate_session.AnnotateSession.choose_series)."""
    session: AnnotateSession = request.app.state.session
    try:
        body = await read_json(request)
        choice = body.get("series")
        if not isinstance(choice, str) or not choice.strip():
            raise RequestTypeError("'series' must be the reference of one of the patient's series (its list: GET "
                                   "/api/annotate/patients/{index}/series)")
        version = row_version(body)
        clear_roi = body.get("clear_roi", False)
        if not isinstance(clear_roi, bool):
            raise RequestTypeError("'clear_roi' must be true or false")
        patient = await run_in_threadpool(session.choose_series, request.path_params["index"], choice, version,
                                          clear_roi=clear_roi)
    except VcpredError as exc:
        return error_response(request, exc)
    return JSONResponse({"patient": patient.public(), **session.progress()})


async def exclude_patient(request: Request) -> JSONResponse:
    """Write the patient's exclusion reason ("" includes it again) into the manifest (AnnotateSession.exclude)."""
    session: AnnotateSession = request.app.state.session
    try:
        body = await read_json(request)
        reason = body.get("reason")
        if not isinstance(reason, str):
            raise RequestTypeError("'reason' must be text: why the patient is left out of every step, or \"\" to "
                                   "include it again")
        version = row_version(body)
        patient = await run_in_threadpool(session.exclude, request.path_params["index"], reason, version)
    except VcpredError as exc:
        return error_response(request, exc)
    return JSONResponse({"patient": patient.public(), **session.progress()})


async def save_roi(request: Request) -> JSONResponse:
    session: AnnotateSession = request.app.state.session
    try:
        body = await read_json(request)
        roi_slice, box = read_roi(body)
        version = row_version(body)
        patient = await run_in_threadpool(session.save, request.path_params["index"], roi_slice, box, version)
    except VcpredError as exc:
        return error_response(request, exc)
    return JSONResponse({"patient": patient.public(), **session.progress()})


def create_annotate_app(session: AnnotateSession, settings: ServeSettings | None = None):
    """The annotation viewer over one session (the caller holds its manifest lock)."""
    patient = "/api/annotate/patients/{index:int}"
    study = "/api/studies/{study_id:str}"
    routes = [
        Route("/", index), Route("/api/annotate", state),
        Route(f"{patient}/open", open_patient, methods=["POST"]), Route(f"{patient}/roi", save_roi, methods=["POST"]),
        Route(f"{patient}/series", series_choices), Route(f"{patient}/series", choose_series, methods=["POST"]),
        Route(f"{patient}/exclude", exclude_patient, methods=["POST"]), Route(f"{patient}/thumbnail", thumbnail),
        Route(study, get_study), Route(study, close_study, methods=["DELETE"]),
        Route(f"{study}/close", close_study, methods=["POST"]), Route(f"{study}/volume", volume),
    ]
    settings = settings or ServeSettings()
    app = viewer_app(routes, settings)
    app.state.session, app.state.thumbnails = session, Thumbnails(session, settings)
    return app
