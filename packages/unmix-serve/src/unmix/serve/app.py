"""The web app: three pages (plain HTML, CSS and JavaScript from static/), the JSON API they use, and
the error handling that keeps every answer one readable line.

The pages hold no data: they fetch everything from the API, so what a page shows can also be had
with curl (docs/serve.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from unmix.core.errors import UnmixError
from unmix.serve import runs_api, separations_api
from unmix.serve.jobs import JobQueue
from unmix.serve.safety import BodyLimit, RequestError, SameSite, SecurityHeaders, without_server_paths

log = logging.getLogger("unmix.serve")
STATIC = Path(__file__).parent / "static"


@attrs.frozen
class ServeSettings:
    runs: Path
    jobs: Path
    max_upload_bytes: int = 200_000_000
    hosts: frozenset[str] | None = None
    """The Host names the server answers to (None: any); `unmix serve` sets them when it listens on loopback."""


def create_app(settings: ServeSettings) -> Starlette:
    """The app for `settings`; its job worker runs while the app does (its lifespan)."""
    queue = JobQueue(settings.jobs, settings.runs)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        queue.start()
        try:
            yield
        finally:
            queue.stop()

    def page(name: str) -> Callable[[Request], Awaitable[FileResponse]]:
        async def serve_page(_request: Request) -> FileResponse:
            return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"})

        return serve_page

    def unmix_error(_request: Request, error: Exception) -> JSONResponse:
        folders = {"--runs": settings.runs, "--jobs": settings.jobs}
        return JSONResponse({"error": without_server_paths(str(error), folders)}, status_code=400)

    routes = [
        Route("/", page("separate.html")),
        Route("/runs", page("runs.html")),
        Route("/runs/compare", page("compare.html")),
        Route("/api/models", separations_api.list_models),
        Route("/api/separations", separations_api.list_separations),
        Route("/api/separations", separations_api.create_separation, methods=["POST"]),
        Route("/api/separations/{job}", separations_api.get_separation),
        Route("/api/separations/{job}/files/{name}", separations_api.get_separation_file),
        Route("/api/runs", runs_api.list_runs),
        Route("/api/runs/{run}", runs_api.get_run),
        Route("/api/runs/{run}/plots/{plot}", runs_api.get_plot),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SameSite, hosts=settings.hosts),
                    Middleware(BodyLimit, max_bytes=settings.max_upload_bytes),
                    Middleware(SecurityHeaders)],
        exception_handlers={RequestError: _request_error, HTTPException: _http_error, UnmixError: unmix_error,
                            Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.jobs = queue
    return app


def _request_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestError)
    return JSONResponse({"error": error.message}, status_code=error.status)


def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        message = (f"nothing at '{request.url.path}'; the pages are /, /runs and /runs/compare, and the API is "
                   "under /api (docs/serve.md)")
    else:
        message = str(error.detail)
    return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)


def _internal_error(request: Request, error: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return JSONResponse({"error": "internal error; the server's log has the details"}, status_code=500)
