"""The web app of ``s2vt serve``: one HTML page and a small JSON API (FastAPI).

Routes:

- ``GET /``: the page (a package data file; no CDN, works offline);
- ``POST /api/caption`` (``multipart/form-data``, the video in the field ``file``;
  query ``beam_size``, ``frames``): the caption, the hypotheses with log-probabilities and
  the sampled frames;
- ``GET /api/health``: the model, the limits and the load;
- ``GET /openapi.json``: the OpenAPI description (FastAPI's; its Swagger page is off
  because it loads scripts from a CDN).

Every error is ``{"error": "<one line>", "status": <code>}`` with a 4xx status for what a
client did (413 too large, 400 bad or missing upload, 422 not a decodable video, 503 busy
with Retry-After); an unexpected failure is a 500 with the same shape, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

# At module level: FastAPI reads the routes' annotations (Request, Query) from here.
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from s2vt.serve.engine import CaptionEngine, CaptionError
from s2vt.serve.limits import ServeLimits
from s2vt.serve.uploads import FIELD, UploadError, receive_upload

log = logging.getLogger(__name__)

PAGE_FILE = "page.html"
# The page's own inline script and style; frames arrive as data: URIs; nothing external.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                               "style-src 'unsafe-inline'; img-src data:; media-src blob:; "
                               "connect-src 'self'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [FIELD],
            "properties": {FIELD: {"type": "string", "format": "binary",
                                   "description": "the video file"}},
        }}},
    },
}


def page_html() -> str:
    """The page shipped with the package."""
    return resources.files("s2vt.serve").joinpath(PAGE_FILE).read_text(encoding="utf-8")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers=headers)


def make_upload_dir(parent: Path | None = None) -> Path:
    """A fresh private folder (mode 0700, ``mkdtemp``) for this server's uploads."""
    return Path(tempfile.mkdtemp(prefix="s2vt-serve-", dir=parent))


def create_app(engine: CaptionEngine, limits: ServeLimits, *,
               upload_dir: Path | None = None) -> FastAPI:
    """The FastAPI app around a loaded engine.

    Args:
        engine: the captioning engine (model loaded once, by the caller).
        limits: upload and concurrency limits.
        upload_dir: the private folder uploads are streamed into (default: a new one under
            the system temp folder); removed when the app shuts down.
    """
    folder = upload_dir if upload_dir is not None else make_upload_dir()
    page = page_html()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    app = FastAPI(title="s2vt serve", description="Caption a video with an s2vt model.",
                  version="1", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.state.limits = limits
    app.state.upload_dir = folder

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> Any:
        return _error(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_: Request, error: RequestValidationError) -> Any:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ())[1:]) or "request"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return _error(400, "bad request: " + "; ".join(problems))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> Any:
        log.exception("unexpected error while serving a request")
        return _error(500, "internal error (the server log has the details)")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/api/health", summary="Model, limits and load")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": engine.model_info(),
            "limits": {"max_upload_mb": limits.max_upload_mb, "workers": limits.workers,
                       "queue": limits.queue, "decode_timeout": limits.decode_timeout,
                       "max_beam_size": limits.max_beam_size},
            "in_flight": engine.in_flight,
            "served": engine.served,
            "failed": engine.failed,
        }

    @app.post("/api/caption", summary="Caption an uploaded video", openapi_extra=_UPLOAD_SCHEMA)
    async def caption(
        request: Request,
        beam_size: int | None = Query(None, ge=1, le=limits.max_beam_size,
                                      description="beam width (default: the server's)"),
        frames: bool = Query(True, description="return the sampled frames as thumbnails"),
    ) -> Any:
        if not engine.admit():
            return _error(503, f"busy: {limits.capacity} videos are being captioned or are "
                               f"waiting; try again in {limits.retry_after} s",
                          headers={"Retry-After": str(limits.retry_after)})
        path: Path | None = None
        try:
            path = await receive_upload(request, folder, limits.max_upload_bytes)
            result = await run_in_threadpool(engine.caption_file, path, beam_size, frames)
        except (UploadError, CaptionError) as error:
            return _error(error.status, error.message)
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
            engine.release()
        result["model"] = engine.model_info()["name"]
        return result

    return app
