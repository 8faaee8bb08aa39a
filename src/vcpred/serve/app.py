"""`vcpred serve`: the viewer (viewer.py: app shell, study routes) plus the model's routes:
uploads and the local folder, series choice, prediction, heat map and downloads (docs/serve.md).

Inference runs in the thread pool under the study's lock, one at a time (inference.py). An upload's
body is the file's bytes (application/octet-stream); every other body is JSON (viewer.read_json).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from vcpred import RESEARCH_NOTICE
from vcpred.errors import ConfigError, VcpredError
from vcpred.predict.bundle import Bundle
from vcpred.predict.clinical_input import form_fields
from vcpred.predict.predict import provenance_fields
from vcpred.serve import local
from vcpred.serve.errors import ServeError, UnsupportedUpload
from vcpred.serve.inference import (PredictionGate, PredictRequest, RESULT_DIR, predict_study, result_payload,
                                    sequence_name)
from vcpred.serve.loading import READING, choose_series, load_upload, receive_upload
from vcpred.serve.private import scrubber
from vcpred.serve.settings import ServeSettings
from vcpred.serve.studies import Study
from vcpred.serve.viewer import (STATIC, close_study, error_response, get_study, in_study, media_type, new_study,
                                 raw_response, read_json, study_state, text_field, viewer_app, volume)

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


async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html")


async def model_info(request: Request) -> JSONResponse:
    bundle: Bundle = request.app.state.bundle
    settings: ServeSettings = request.app.state.settings
    params = bundle.prepare_params()
    return JSONResponse({
        "model_id": bundle.meta.model_id, "configuration": bundle.meta.configuration,
        "family": bundle.meta.family, "splits": len(bundle.models), "threshold": bundle.threshold,
        "threshold_rule": bundle.meta.threshold_rule, "ap": bundle.meta.ap, "aggregate": bundle.meta.aggregate,
        "k": params.k, "edge": params.edge, "margin": params.margin, "sequence": sequence_name(bundle),
        "clinical": form_fields(bundle), "notice": RESEARCH_NOTICE, **provenance_fields(bundle),
        "max_upload_mb": settings.max_upload_mb, "local_folder": settings.data_dir is not None})


async def upload(request: Request) -> JSONResponse:
    if media_type(request) not in UPLOAD_TYPES:
        return error_response(request, UnsupportedUpload(
            "send the file's bytes as the request body with Content-Type: application/octet-stream"))
    settings = request.app.state.settings
    return await new_study(request, lambda study: load_upload(study, settings),
                           receive=lambda folder: receive_upload(request, folder, settings))


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
        return raw_response(heat, heat.shape)
    return await in_study(request, work)


async def download(request: Request) -> Response:
    name = request.url.path.rsplit("/", 1)[-1]

    def work(study: Study):
        study.require_prediction()
        path = study.folder / RESULT_DIR / name
        if not path.is_file():
            raise ServeError(f"no {name} for this study")
        return Response(path.read_bytes(), media_type=DOWNLOADS[name],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return await in_study(request, work)


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
        # One route per download: a catch-all name would also take GET .../close and answer 409, not 405.
        *(Route(f"{study}/{name}", download) for name in DOWNLOADS),
    ]
    app = viewer_app(routes, settings)
    app.state.bundle = bundle
    app.state.predictions = PredictionGate(settings.max_predictions)
    return app
