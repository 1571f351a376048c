"""`imgdiff-rt web`: the HTTP API and the single page, over the same Pipeline and options as `run`."""

from __future__ import annotations

import shutil
import socket
import tempfile
from typing import Any, Sequence

import click

from imgdiff_rt.errors import UsageError
from imgdiff_rt.web.limits import WebLimits
from imgdiff_rt.cli.options import NOTICE_KEY, detector_options, pipeline_option_names

DEFAULT_PORT = 8080
MAX_UPLOAD_MB = 256  # bigger image files are refused by the reader itself
MIB = 2**20
_DEFAULTS = WebLimits()
_BUILD_ONLY = "imgdiff_rt.web.build_only"  # ctx.meta flag: make_app wants the app, not a server


def _web_limits(params: dict[str, Any]) -> WebLimits:
    return WebLimits(max_upload_bytes=int(params["max_upload_mb"] * MIB), max_jobs=params["max_jobs"],
                     keep_s=params["keep_s"], keep_bytes=int(params["keep_mb"] * MIB),
                     body_timeout_s=params["body_timeout_s"], header_timeout_s=params["header_timeout_s"])


def _build_app(ctx: click.Context, pipeline):
    """The ASGI app for the parsed options in ``ctx``, over ``pipeline`` (built by ``detector_options``)."""
    try:
        from imgdiff_rt.web.app import create_app
        from imgdiff_rt.config.requests import RequestOptions
    except ImportError as e:
        raise UsageError(f"`imgdiff-rt web` needs the web extra: pip install 'imgdiff-rt[web]' ({e})") from None
    server_values = {k: ctx.params[k] for k in pipeline_option_names()}
    own = [p.name for p in web.params if p.name not in server_values]
    return create_app(pipeline, RequestOptions(server_values, server_fields=own), _web_limits(ctx.params),
                      notice=ctx.meta.get(NOTICE_KEY))


def _check_can_listen(host: str, port: int) -> None:
    """A taken port or an address this machine does not have: one line now, not a server log later."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


def make_app(args: Sequence[str] = ()):
    """The app `imgdiff-rt web ARGS` would serve, built by the same path, without serving it (tests, or
    another ASGI server)."""
    with web.make_context("web", list(args)) as ctx:
        ctx.meta[_BUILD_ONLY] = True
        return ctx.invoke(web.callback, **ctx.params)


@click.command("web", context_settings={"max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; there is no authentication).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--max-upload-mb", type=click.FloatRange(0.01, MAX_UPLOAD_MB),
              default=_DEFAULTS.max_upload_bytes / MIB, show_default=True, help="Largest image file a request may upload (each of the two).")
@click.option("--max-jobs", type=click.IntRange(1, 256), default=_DEFAULTS.max_jobs, show_default=True,
              help="Pairs processed at once; a request beyond them gets 429 (retry later).")
@click.option("--keep-s", type=click.FloatRange(1, 86400), default=_DEFAULTS.keep_s, show_default=True,
              help="How long a result's annotated.png / mask.png can be fetched.")
@click.option("--keep-mb", type=click.FloatRange(1, 65536), default=_DEFAULTS.keep_bytes / MIB,
              show_default=True, help="Memory for kept results' pixels and drawn pictures; pictures, then the "
                                      "oldest results, are dropped beyond it.")
@click.option("--body-timeout-s", type=click.FloatRange(1, 3600), default=_DEFAULTS.body_timeout_s,
              show_default=True, help="A request body must have arrived this long after its headers (else 408).")
@click.option("--header-timeout-s", type=click.FloatRange(1, 600), default=_DEFAULTS.header_timeout_s,
              show_default=True, help="A connection must send its request headers this soon (else 408, closed).")
@detector_options
def web(host: str, port: int, max_upload_mb: float, max_jobs: int, keep_s: float, keep_mb: float,
        body_timeout_s: float, header_timeout_s: float, pipeline):
    """Serve the HTTP API and a page to compare two images in a browser.

    \b
    API: POST /v1/diff (multipart: left, right, options), GET /v1/diff/ID/annotated.png and
    /mask.png, /v1/health, /v1/info; OpenAPI docs at /docs. Page: http://HOST:PORT/

    \b
    Examples:
      imgdiff-rt web
      imgdiff-rt web --port 9000 --max-jobs 4 --metric absdiff
      curl -F left=@examples/left.png -F right=@examples/right.png localhost:8080/v1/diff
    """
    ctx = click.get_current_context()
    if not ctx.meta.get(_BUILD_ONLY):
        _check_can_listen(host, port)
    app = _build_app(ctx, pipeline)
    if ctx.meta.get(_BUILD_ONLY):
        return app
    try:
        from imgdiff_rt.web.server import serve
    except ImportError as e:
        raise UsageError(f"`imgdiff-rt web` needs the web extra: pip install 'imgdiff-rt[web]' ({e})") from None
    # Uploads the multipart parser spools to disk go to a private folder, removed when the server stops.
    spool = tempfile.mkdtemp(prefix="imgdiff-rt-web-")
    saved_tempdir, tempfile.tempdir = tempfile.tempdir, spool

    def cleanup() -> None:
        try:
            pipeline.close()
        finally:
            tempfile.tempdir = saved_tempdir
            shutil.rmtree(spool, ignore_errors=True)

    click.echo(f"imgdiff-rt web: http://{host}:{port}/  (API docs: /docs)", err=True)
    if ctx.meta.get(NOTICE_KEY):  # as `run` says it: what this server's pipeline falls back to, or lacks
        click.echo(ctx.meta[NOTICE_KEY], err=True)
    stopped_by = serve(app, host, port, header_timeout_s, cleanup)
    if stopped_by:
        click.echo(f"imgdiff-rt web: stopped ({stopped_by}), spool folder removed", err=True)
