"""The HTTP API: a Starlette app that classifies hand-drawn digits with scratchnet's models.

    GET  /                       health JSON for API clients, the drawing page for browsers
    GET  /health                 {"status", "models_loaded", "version"}
    POST /predict                multipart upload in field `file`
    POST /predict/base64         JSON {"image": base64 or data URL, ...}
    POST /explain, /explain/base64  the same, plus the activations and input gradients
    GET  /models                 every known model, loaded or not
    GET  /model/{model_type}/info  layers, parameter shapes, accuracy, training config
    GET  /openapi.json           the OpenAPI schema (server/openapi.py)
    GET  /docs                   Swagger UI on that schema, its assets from swagger-ui-bundle
    GET  /docs/draw              a hand-made page to try the endpoints, with a drawing pad
    GET  /metrics                Prometheus text
    GET  /static/...             the drawing page's files (frontend/)

`create_app(config)` builds an app; `server.app:app` is one built lazily from the SCRATCHNET_*
environment variables, for `uvicorn server.app:app`. Models are loaded once, in the lifespan.

Where the CPU work runs (`inference_mode`, see `_run` and server/README.md): by default
("auto") a small image's prediction (a 280x280 canvas PNG: decode, prepare and the CNN's
forward pass, about 2 ms) runs inline on the event loop, where the hop to a thread and back
cost more than it spared, and a large image's in Starlette's thread pool, where it cannot stall
the other connections (0.45 s for a 4000x4000 PNG). "threadpool" and "inline" force one way.

This module must not import torch (tests/server checks): the serving path is NumPy and Numba.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope
from swagger_ui_bundle import swagger_ui_path

import scratchnet
from scratchnet.mnist.imageprep import ImageError, ImageTooLargeError, NoInkError
from server.config import ServerConfig
from server.errors import (
    APIError,
    BodyLimitMiddleware,
    CatchAllMiddleware,
    JSONCORSMiddleware,
    api_error_handler,
    http_exception_handler,
    internal_error_handler,
)
from server.inference import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    ModelRegistry,
    NonFiniteOutputError,
    UnknownModelError,
)
from server.metrics import Metrics, MetricsMiddleware
from server.openapi import build_openapi
from server.params import (
    decode_base64_image,
    form_parameters,
    invalid,
    is_json_media_type,
    json_parameters,
    media_type,
    wants_html,
)
from server.resources import LARGE_DECODE, DecodeBudget

logger = logging.getLogger("server.app")

STATIC_DIR = Path(__file__).parent / "static"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def _model_error(exc: UnknownModelError, not_found_status: int) -> APIError:
    """Unknown name -> not_found_status (404 on a path, 422 as a parameter); not loaded -> 503."""
    if exc.known:
        return APIError(503, "model_not_loaded", str(exc), available_models=exc.available)
    if not_found_status == 404:
        return APIError(404, "unknown_model", str(exc), available_models=exc.available)
    return invalid("model_type", str(exc), available_models=exc.available)


async def _run(request: Request, decoded_bytes: int, fn: Any, *args: Any) -> Any:
    """fn(*args) on the event loop or in the thread pool, as inference_mode says.

    "auto" runs an image that decodes to less than LARGE_DECODE bytes (the 280x280 canvas:
    314 KB; about 2 ms of work) inline: the hop to a thread and back cost more than that
    stall, 0.40 against 0.86 ms for the web layers of one request (benchmarks/
    profile_server.py, load 12). A larger image, whose decode and preparation can take
    hundreds of milliseconds, goes to the thread pool, so that it never stalls the loop.
    """
    mode = request.app.state.config.inference_mode
    if mode == "inline" or (mode == "auto" and 0 < decoded_bytes < LARGE_DECODE):
        return fn(*args)
    return await run_in_threadpool(fn, *args)


async def _predict(
    request: Request, image: bytes, options: dict[str, Any], explain: bool = False
) -> Response:
    """Classify (or explain) an image: options are server.params' values, in the order the
    registry's predict (or explain) takes them."""
    registry = _registry(request)
    model_type = options["model_type"]
    budget: DecodeBudget = request.app.state.decode_budget
    try:
        opened, decoded_bytes = budget.open(image)  # the header only: no pixel decoded yet
        async with budget.slot(decoded_bytes):
            run = registry.explain if explain else registry.predict
            result = await _run(request, decoded_bytes, run, opened, *options.values())
    except UnknownModelError as exc:
        raise _model_error(exc, 422) from None
    except NonFiniteOutputError as exc:
        raise APIError(503, "invalid_model_output", str(exc)) from None
    except ImageTooLargeError as exc:
        raise APIError(413, "image_too_large", str(exc)) from None
    except NoInkError as exc:
        raise APIError(422, "no_ink", str(exc)) from None
    except ImageError as exc:
        raise APIError(400, "invalid_image", str(exc)) from None

    metrics: Metrics = request.app.state.metrics
    metrics.observe_prediction(model_type, result["predicted_class"], result["inference_ms"])
    return JSONResponse(result)


def _check_model(request: Request, model_type: str) -> None:
    """Fail fast on a bad model name, before the upload is decoded."""
    try:
        _registry(request).get(model_type)
    except UnknownModelError as exc:
        raise _model_error(exc, 422) from None


# ---------------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------------


def _health_body(request: Request) -> tuple[dict[str, Any], int]:
    loaded = _registry(request).loaded_names
    body = {
        "status": "healthy" if loaded else "unhealthy",
        "models_loaded": loaded,
        "version": scratchnet.__version__,
    }
    return body, 200 if loaded else 503


async def health(request: Request) -> Response:
    body, status = _health_body(request)
    return JSONResponse(body, status)


async def root(request: Request) -> Response:
    index = request.app.state.config.frontend_dir / "index.html"
    if wants_html(request.headers.get("accept")) and index.is_file():
        return FileResponse(index, media_type="text/html", headers={"Vary": "Accept"})
    body, status = _health_body(request)
    return JSONResponse(body, status, headers={"Vary": "Accept"})


async def _read_upload(request: Request, explain: bool) -> tuple[bytes, dict[str, Any]]:
    """The image and the options of a POST /predict or /explain multipart upload."""
    path = request.url.path
    content_type = media_type(request)
    if content_type != "multipart/form-data":
        raise APIError(
            415,
            "unsupported_media_type",
            f"POST {path} takes multipart/form-data with the image in field 'file', "
            f"not {content_type or 'a body without Content-Type'}; "
            f"send base64 JSON to {path}/base64 instead",
        )
    try:
        async with request.form(max_files=4, max_fields=16, max_part_size=64 * 1024) as form:
            options = form_parameters(form, request.query_params, explain)
            model_type = options["model_type"]

            upload = form.get("file")
            if upload is None:
                raise invalid("file", "missing: upload the image in multipart field 'file'")
            if not isinstance(upload, UploadFile):
                raise invalid("file", "must be a file upload (with a filename), not a text field")
            _check_model(request, model_type)
            image = await upload.read()
    except MultiPartException as exc:
        raise APIError(400, "invalid_multipart", exc.message) from None
    except HTTPException as exc:
        if exc.status_code == 400:  # Starlette's wrapper around MultiPartException
            raise APIError(400, "invalid_multipart", str(exc.detail)) from None
        raise
    if not image:
        raise APIError(400, "invalid_image", "the uploaded file is empty")
    return image, options


def _reject_constant(name: str) -> Any:
    """Python's json accepts NaN and Infinity; JSON (RFC 8259) does not."""
    raise ValueError(f"{name} is not valid JSON")


async def _read_base64(request: Request, explain: bool) -> tuple[bytes, dict[str, Any]]:
    """The image and the options of a POST /predict/base64 or /explain/base64 JSON body."""
    content_type = media_type(request)
    if not is_json_media_type(content_type):
        raise APIError(
            415,
            "unsupported_media_type",
            f"POST {request.url.path} takes application/json, not "
            f"{content_type or 'a body without Content-Type'}",
        )
    body = await request.body()
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise APIError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise APIError(
            422, "validation_error", "the body must be a JSON object with an 'image' field"
        )
    if "image" not in payload:
        raise invalid("image", "missing: send the image as a base64 string or data URL")

    options = json_parameters(payload, explain)
    image = decode_base64_image(payload["image"])
    _check_model(request, options["model_type"])
    return image, options


Reader = Callable[[Request, bool], Awaitable[tuple[bytes, dict[str, Any]]]]


def _classify_with(read: Reader, explain: bool) -> Callable[[Request], Awaitable[Response]]:
    """A POST handler that reads the image and options with `read`, then predicts or explains.

    The four POST routes differ only in these two choices: how the body is read and what is
    answered.
    """

    async def endpoint(request: Request) -> Response:
        image, options = await read(request, explain)
        return await _predict(request, image, options, explain)

    return endpoint


predict = _classify_with(_read_upload, explain=False)
explain = _classify_with(_read_upload, explain=True)
predict_base64 = _classify_with(_read_base64, explain=False)
explain_base64 = _classify_with(_read_base64, explain=True)


async def list_models(request: Request) -> Response:
    registry = _registry(request)
    return JSONResponse(
        {
            "models": [registry.describe(name) for name in registry.statuses],
            "default_model": DEFAULT_MODEL,
        }
    )


async def model_info(request: Request) -> Response:
    model_type = request.path_params["model_type"]
    try:
        return JSONResponse(_registry(request).info(model_type))
    except UnknownModelError as exc:
        raise _model_error(exc, 404) from None


async def openapi_schema(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def docs(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "swagger-ui.html", media_type="text/html")


async def docs_draw(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    # In a thread: rendering holds the registry's lock and walks every series.
    text = await run_in_threadpool(metrics.render)
    return Response(text, headers={"Content-Type": metrics.content_type})


async def frontend_missing(request: Request) -> Response:
    raise APIError(
        404,
        "not_found",
        f"the drawing page's files are not installed (no folder "
        f"{request.app.state.config.frontend_dir.name}/ next to the server)",
    )


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


class FileStaticFiles(StaticFiles):
    """StaticFiles that serves files only at their exact path.

    Starlette normalises the path before looking it up, which drops a trailing slash:
    `/static/index.html/` would serve index.html. Directories are never listed (html=False),
    so a path ending in "/" names nothing here.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["path"].endswith("/"):
            raise HTTPException(404)
        return await super().get_response(path, scope)


def _routes(config: ServerConfig) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/", root, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/predict/base64", predict_base64, methods=["POST"]),
        Route("/explain", explain, methods=["POST"]),
        Route("/explain/base64", explain_base64, methods=["POST"]),
        Route("/models", list_models, methods=["GET"]),
        Route("/model/{model_type}/info", model_info, methods=["GET"]),
        Route("/openapi.json", openapi_schema, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/draw", docs_draw, methods=["GET"]),
        Mount("/docs/assets", FileStaticFiles(directory=STATIC_DIR), name="docs-assets"),
        # Swagger UI's dist folder as the swagger-ui-bundle package installed it: no CDN.
        Mount("/docs/swagger-ui", FileStaticFiles(directory=swagger_ui_path), name="swagger-ui"),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if config.frontend_dir.is_dir():
        static = FileStaticFiles(directory=config.frontend_dir)
        routes.append(Mount("/static", static, name="static"))
    else:
        logger.warning("frontend folder %s not found: / serves JSON only", config.frontend_dir)
        routes.append(Route("/static/{path:path}", frontend_missing, methods=["GET"]))
    return routes


def create_app(config: ServerConfig | None = None) -> Starlette:
    """Build the app. Models load when its lifespan starts (uvicorn start-up, TestClient entry)."""
    config = ServerConfig.from_env() if config is None else config
    registry = ModelRegistry(config.model_dir, config.max_image_pixels, config.numba_threads)
    metrics = Metrics(MODEL_NAMES)
    routes = _routes(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Mangum runs the lifespan around every Lambda invocation: load only the first time.
        if not registry.loaded_once:
            registry.load_all(warmup=config.warmup)
            for name, status in registry.statuses.items():
                metrics.model_loaded.labels(model=name).set(1 if status.loaded else 0)
                if status.entry is not None:
                    metrics.model_load_seconds.labels(model=name).set(status.entry.load_seconds)
        yield

    # Outermost first. CORS sits outside the error handling, so that error responses carry
    # the CORS headers too, and metrics outside everything, to count every response.
    templates = [route.path for route in routes if isinstance(route, Route | Mount)]
    middleware = [Middleware(MetricsMiddleware, metrics=metrics, routes=templates)]
    if config.cors_origins:
        middleware.append(
            Middleware(
                JSONCORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Content-Type"],
                max_age=600,
            )
        )
    middleware += [
        Middleware(CatchAllMiddleware),
        Middleware(
            BodyLimitMiddleware, max_bytes=config.max_upload_bytes, timeout=config.body_timeout
        ),
    ]

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            APIError: api_error_handler,
            HTTPException: http_exception_handler,
            Exception: internal_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.decode_budget = DecodeBudget(
        config.max_image_pixels, config.max_decode_bytes, config.decode_concurrency
    )
    app.state.openapi = build_openapi(config)
    return app


_default_app: Starlette | None = None


def __getattr__(name: str) -> Any:
    """`server.app.app`, built on first access so that importing this module stays cheap."""
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
