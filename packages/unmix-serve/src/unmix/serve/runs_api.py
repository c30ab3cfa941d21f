"""The runs API: every run under --runs, one run in full, and its plots.

Handlers are plain functions, which starlette runs in its thread pool: they read files, and a
run folder on a slow disk must not hold up the other requests.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from unmix.serve.model_choices import runtime_suffixes
from unmix.serve.run_folders import describe_run, plot_file, run_names
from unmix.serve.safety import RequestError


def list_runs(request: Request) -> JSONResponse:
    runs = request.app.state.settings.runs
    suffixes = runtime_suffixes()
    described = []
    for name in run_names(runs):
        try:
            described.append(describe_run(runs, name, suffixes, full=False))
        except RequestError:  # removed since it was listed
            continue
    return JSONResponse({"runs": described})


def get_run(request: Request) -> JSONResponse:
    runs = request.app.state.settings.runs
    return JSONResponse(describe_run(runs, request.path_params["run"], runtime_suffixes()))


def get_plot(request: Request) -> FileResponse:
    runs = request.app.state.settings.runs
    path = plot_file(runs, request.path_params["run"], request.path_params["plot"])
    # Training redraws loss.png every epoch: the browser must ask again rather than keep an old copy.
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})
