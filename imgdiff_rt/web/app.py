"""The ASGI application: the HTTP API over one :class:`Pipeline`, and the single page at ``/``.

Every error leaves as ``{"error": "..."}`` with a status code; library errors keep their one-line messages,
anything unexpected becomes a 500 whose traceback goes to the server log only.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from imgdiff_rt import __version__
from imgdiff_rt.errors import ImageTooLargeError, ImgDiffError, InputError, ModelError, UsageError
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.web.diff import DiffService, job_payload
from imgdiff_rt.web.info import info_payload
from imgdiff_rt.web.limits import BodyLimitMiddleware, BodyTimeout, BodyTooLarge, WebLimits
from imgdiff_rt.config.requests import RequestOptions
from imgdiff_rt.web.store import JOB_ID_PATTERN, Job
from imgdiff_rt.web.uploads import UploadTooLarge

log = logging.getLogger("imgdiff_rt.web")
STATIC_DIR = Path(__file__).with_name("static")
# The example pair in a source checkout (an installed wheel has none: the page then hides its button).
EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples"
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'")
NO_STORE = {"Cache-Control": "no-store"}
CLOSE = {"Connection": "close"}  # the rest of an unread body is not worth reading
# An Img-Diff picture's name: the job id, "-", the region number in ASCII digits (a short one), ".png".
PICTURE_NAME = re.compile(r"(?P<job>[0-9a-f]{16})-(?P<region>[0-9]{1,6})\.png")
_STATUS = ((UploadTooLarge, 413), (ImageTooLargeError, 413), (InputError, 400),
           (UsageError, 400), (ModelError, 503))


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _status_of(e: ImgDiffError) -> int:
    return next((code for cls, code in _STATUS if isinstance(e, cls)), 400)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ImgDiffError)
    async def library_error(_: Request, e: ImgDiffError) -> JSONResponse:
        return error_response(_status_of(e), str(e))

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, e: BodyTooLarge) -> JSONResponse:
        return error_response(413, str(e), CLOSE)

    @app.exception_handler(BodyTimeout)
    async def body_timeout(_: Request, e: BodyTimeout) -> JSONResponse:
        return error_response(408, str(e), CLOSE)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        # the client's choice, not a server fault: one line in the log, and an answer nobody will read
        log.info("client %s left before sending the whole request", request.client.host if request.client else "?")
        return error_response(400, "client disconnected before the request body was complete", CLOSE)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        message = e.detail if isinstance(e.detail, str) else str(e.detail)
        if e.status_code == 404 and message == "Not Found":
            message = "not found (see /docs for the API)"
        return error_response(e.status_code, message, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def internal_error(_: Request, e: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, f"internal error ({type(e).__name__}); the server log has the details")


async def _refuse_body(scope, receive, send, e: BodyTooLarge) -> None:
    await error_response(413, str(e))(scope, receive, send)


def create_app(pipeline: Pipeline, options: RequestOptions, limits: WebLimits | None = None,
               notice: str | None = None) -> FastAPI:
    """``options``: the per-request options (and the server's values of all options), read against the
    library's option declarations, so a request's options mean what the command line's flags mean; ``notice``:
    the line `run` would print about this pipeline (shown by /v1/info and the page)."""
    limits = limits or WebLimits()
    pipeline.open()  # model sessions open now, once: a broken bundle fails at start, not on the first request
    service = DiffService(pipeline, options, limits, notice)
    app = FastAPI(title="imgdiff-rt", version=__version__, docs_url=None, redoc_url=None,
                  description="Find and describe the differences between two images. The page is at `/`.")
    app.state.service = service
    _install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=limits.max_body_bytes, refuse=_refuse_body,
                       timeout_s=limits.body_timeout_s)

    @app.middleware("http")
    async def no_sniff(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    _add_api_routes(app, service)
    _add_page_routes(app)
    return app


def _job(service: DiffService, job_id: str) -> Job:
    job = service.store.get(job_id)
    if job is None:
        raise StarletteHTTPException(404, f"no result {job_id} (results are kept {service.limits.keep_s:g} s)")
    return job


def _png(data: bytes | None, what: str) -> Response:
    if data is None:
        raise StarletteHTTPException(404, f"this result has no {what}")
    return Response(data, media_type="image/png", headers=NO_STORE)


def _add_api_routes(app: FastAPI, service: DiffService) -> None:
    job_path = "/v1/diff/{job_id:str}"

    @app.get("/v1/health", summary="Liveness and load")
    def health() -> dict[str, Any]:
        return {"status": "ok", "jobs_running": service.slots.running, "max_jobs": service.limits.max_jobs,
                **service.store.stats()}

    @app.get("/v1/info", summary="Versions, pipeline settings, model weights, limits, per-request options")
    def info() -> dict[str, Any]:
        return info_payload(service, example=(EXAMPLE_DIR / "left.png").is_file())

    @app.post("/v1/diff", summary="Compare two images", openapi_extra=_diff_request_doc(service.options),
              responses={400: {"description": "bad input"}, 413: {"description": "over a size cap"},
                         415: {"description": "not a multipart form"}, 429: {"description": "busy: retry later"}})
    async def diff(request: Request) -> JSONResponse:
        job = await service.handle(request)
        return JSONResponse(job_payload(job, service.limits), headers=NO_STORE)

    def checked(job_id: str) -> Job:
        if not re.fullmatch(JOB_ID_PATTERN, job_id):
            raise StarletteHTTPException(404, f"no result {job_id[:40]!r}")
        return _job(service, job_id)

    @app.get(job_path, summary="A kept result's JSON")
    def result(job_id: str) -> JSONResponse:
        return JSONResponse(job_payload(checked(job_id), service.limits), headers=NO_STORE)

    @app.get(job_path + "/annotated.png", summary="Both images side by side, regions boxed and numbered")
    def annotated(job_id: str) -> Response:
        return _png(checked(job_id).annotated_png(), "annotated picture")

    @app.get(job_path + "/mask.png", summary="The pixel change mask (white: changed), left image's frame")
    def mask(job_id: str) -> Response:
        return _png(checked(job_id).mask_png(), "change mask (the detector made none)")

    @app.get(job_path + "/img-diff.json", summary="Img-Diff visual-instruction records, one per region")
    def img_diff(job_id: str) -> JSONResponse:
        return JSONResponse(checked(job_id).imgdiff_records(), headers=NO_STORE)

    @app.get(job_path + "/img-diff/{name:str}", summary="The picture an Img-Diff record names")
    def img_diff_picture(job_id: str, name: str) -> Response:
        job = checked(job_id)
        found = PICTURE_NAME.fullmatch(name)
        if found is None or found["job"] != job.id:
            raise StarletteHTTPException(404, f"no picture {name[:60]!r} in this result")
        return _png(job.region_png(int(found["region"])), f"region {int(found['region'])}")


def _diff_request_doc(options: RequestOptions) -> dict:
    """The multipart body for /docs (the handler reads the form itself, to enforce the caps as it streams)."""
    props: dict[str, Any] = {
        "left": {"type": "string", "format": "binary", "description": "left image (PNG, JPEG, WebP, BMP, TIFF)"},
        "right": {"type": "string", "format": "binary", "description": "right image"},
        "options": {"type": "string", "description": 'optional JSON object of options, e.g. {"align": true}'},
        "ignore": {"type": "string", "description": "optional boxes whose changes never count (added to the "
                   "server's): x0,y0,x1,y1 in left-image pixels or fractions 0-1 of the size, several joined "
                   'by ";", or a JSON list of boxes; also "ignore" in options'},
    }
    for o in options.describe():
        props[o["field"]] = {"type": "string", "description": o["help"] or "",
                             **({"enum": o["choices"]} if o["choices"] else {})}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["left", "right"], "properties": props}}}}}


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/v1/example/{side:str}", summary="The bundled example pair (left.png, right.png)")
    def example(side: str) -> FileResponse:
        if side not in ("left.png", "right.png") or not (EXAMPLE_DIR / side).is_file():
            raise StarletteHTTPException(404, f"no example image {side[:40]!r}")
        return FileResponse(EXAMPLE_DIR / side, media_type="image/png")

    try:  # Swagger UI served from the installed package: /docs works offline
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="imgdiff-rt API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")
