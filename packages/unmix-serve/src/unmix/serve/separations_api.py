"""The separation API: submit a song (an upload or a link) with a model, follow the job, fetch its files.

An upload is saved into its job's folder and opened with the project's audio reader before the
job is queued, so a file that is not audio is refused at once, with the reader's reason, and never
reaches the worker. A link is only checked to be a link that a source plugin claims; downloading
it takes time, so the worker does that in its turn.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from unmix.core.errors import AudioError, UnmixError
from unmix.serve.jobs import JobQueue
from unmix.serve.model_choices import find_choice, list_choices
from unmix.serve.safety import RequestError
from unmix.serve.separation import song_and_file_name

LOCAL_SOURCES = ("file", "folder")
"""unmix-sources' sources for paths on this machine: a request may not make the server read its disk."""
_LONGEST_LINK = 2048


def list_models(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    return JSONResponse({"models": [choice.as_json() for choice in list_choices(settings.runs)],
                         "max_upload_bytes": settings.max_upload_bytes})


def list_separations(request: Request) -> JSONResponse:
    return JSONResponse({"separations": request.app.state.jobs.describe_all()})


def get_separation(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.jobs.describe(request.path_params["job"]))


def get_separation_file(request: Request) -> FileResponse:
    path = request.app.state.jobs.file(request.path_params["job"], request.path_params["name"])
    return FileResponse(path, filename=path.name, content_disposition_type="inline",
                        headers={"Cache-Control": "no-cache"})


async def create_separation(request: Request) -> JSONResponse:
    """multipart/form-data or a urlencoded form: `model`, and `file` (an audio file) or `uri` (a link)."""
    form = await request.form(max_files=1, max_fields=4)
    try:
        return await _create(request, form)
    finally:
        await form.close()


async def _create(request: Request, form: FormData) -> JSONResponse:
    settings = request.app.state.settings
    jobs: JobQueue = request.app.state.jobs
    model = _text(form, "model")
    upload = form.get("file")
    upload = upload if isinstance(upload, UploadFile) and (upload.filename or upload.size) else None
    link = _text(form, "uri")
    if not model:
        raise RequestError(400, "choose a model: the form field 'model' names a run (GET /api/models lists them)")
    choice = await run_in_threadpool(find_choice, settings.runs, model)
    if not choice.ready:
        raise RequestError(400, f"run '{choice.run}' has no checkpoint yet; wait for its first epoch or pick "
                                "another model")
    if upload is None and not link:
        raise RequestError(400, "send an audio file (form field 'file') or a link to one (form field 'uri')")
    if upload is not None and link:
        raise RequestError(400, "send either an audio file or a link, not both")
    if upload is None:
        await run_in_threadpool(_check_link, link)
        song = song_and_file_name(urlsplit(link).path or "link", fallback="link")[0]
        job, _ = jobs.new_job(choice, song, link)
    else:
        song, name = song_and_file_name(upload.filename or "song")
        job, files = jobs.new_job(choice, song, "upload", mixture=name)
        try:
            await run_in_threadpool(_save_audio, upload.file, files / name, upload.filename or name)
        except BaseException:
            jobs.discard(job)
            raise
    jobs.submit(job)
    return JSONResponse(jobs.describe(job.id), status_code=202, headers={"Location": f"/api/separations/{job.id}"})


def _text(form: FormData, field: str) -> str:
    value = form.get(field)
    return value.strip() if isinstance(value, str) else ""


def _save_audio(upload: IO[bytes], path: Path, shown_name: str) -> None:
    """Write the upload to `path` and open it as `unmix predict` would; 415 if it is not audio."""
    from unmix.core.data.streaming import check_readable

    with path.open("wb") as handle:
        shutil.copyfileobj(upload, handle)
    try:
        check_readable(path)
    except AudioError as error:
        reason = str(error).replace(str(path), shown_name)
        raise RequestError(415, " ".join(reason.split())) from None


def _check_link(link: str) -> None:
    """A link that a source plugin claims (http(s), or a plugin's own scheme), never a local path."""
    from unmix.core.separation.prediction import find_source

    scheme = urlsplit(link).scheme
    if len(link) > _LONGEST_LINK or len(scheme) < 2 or scheme.lower() == "file" or any(c.isspace() for c in link):
        raise RequestError(400, "the link must be a URL such as https://... (or a scheme a source plugin "
                                "understands); paths on the server are refused: upload the file instead")
    try:
        source = find_source(link)
    except UnmixError as error:
        raise RequestError(400, str(error)) from None
    if source.name in LOCAL_SOURCES:
        raise RequestError(400, "paths on the server are refused; upload the file instead")
