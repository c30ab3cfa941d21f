"""Separation jobs: one folder each under --jobs, run one at a time by a single worker thread.

One at a time because a separation already uses every core the model's framework can take, and a
second one beside it would only make both slower (and double the memory); a job that waits says
where it is in the line. Each job's folder holds its record and its files:

```
<jobs>/<id>/job.json        status, stage, error, the files with their waveform outlines
<jobs>/<id>/files/<song>.<ext>            the mixture as uploaded or downloaded
<jobs>/<id>/files/<song>_<target>.wav     the stems (32-bit float wav)
<jobs>/<id>/files/<song>_rest.wav
```

Records are written whenever a job changes state, so a restarted server lists earlier results;
a job that was waiting or running when the server stopped is marked failed then.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import attrs

from unmix.core.errors import UnmixError
from unmix.core.files import write_json_atomically
from unmix.serve.model_choices import ModelChoice, find_choice
from unmix.serve.run_folders import read_json
from unmix.serve.safety import RequestError, checked_name, inside, without_server_paths
from unmix.serve.separation import EngineCache, fetch_link, separate_song

log = logging.getLogger("unmix.serve")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
RECORD = "job.json"
FILES = "files"
_ID = re.compile(r"[0-9a-f]{32}")


@attrs.define
class Job:
    id: str
    model: str
    song: str
    source: str
    """"upload", or the link the song was fetched from."""
    created: float
    mixture: str | None = None
    """The mixture's file name in files/: known at once for an upload, after fetching for a link."""
    status: str = QUEUED
    stage: str = "waiting for its turn"
    progress: float = 0.0
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    files: list[dict[str, Any]] = attrs.field(factory=list)


class JobQueue:
    """The jobs of one --jobs folder and the thread that works through them in order."""

    def __init__(self, folder: Path, runs: Path) -> None:
        self.folder = folder
        self.runs = runs
        self.engines = EngineCache()
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[str] = deque()
        self._changed = threading.Condition()
        self._stopping = False
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._load_earlier_jobs()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="unmix-serve-jobs", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Take no further job; the one in progress gets 5 s to finish. Jobs left waiting are marked failed when
        a server next starts on this folder."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5)

    def new_job(self, choice: ModelChoice, song: str, source: str, mixture: str | None = None) -> tuple[Job, Path]:
        """A job record and its empty files folder, not queued yet (`submit` queues it)."""
        job = Job(id=secrets.token_hex(16), model=choice.id, song=song, source=source, created=time.time(),
                  mixture=mixture)
        files = self.folder / job.id / FILES
        files.mkdir(parents=True)
        return job, files

    def submit(self, job: Job) -> None:
        with self._changed:
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._save(job)
            self._changed.notify_all()

    def discard(self, job: Job) -> None:
        """Remove a job that was refused before it was queued (its upload was not audio)."""
        shutil.rmtree(self.folder / job.id, ignore_errors=True)

    def describe(self, job_id: str) -> dict[str, Any]:
        """What the API says about a job; 404 for an id that is no job here."""
        job = self._job(job_id)
        with self._changed:
            return self._view(job)

    def describe_all(self) -> list[dict[str, Any]]:
        with self._changed:
            return [self._view(job) for job in sorted(self._jobs.values(), key=lambda job: -job.created)]

    def file(self, job_id: str, name: str) -> Path:
        """One of a job's files, by the name its record lists; everything else is 404."""
        job = self._job(job_id)
        checked_name(name, "file")
        with self._changed:
            listed = {entry["name"] for entry in job.files}
        if name not in listed:
            raise RequestError(404, f"job '{job_id}' has no file '{name}'")
        path = inside(self.folder, job_id, FILES, name, what="file")
        if not path.is_file():
            raise RequestError(404, f"the file '{name}' of job '{job_id}' is gone from the server's --jobs folder")
        return path

    def _job(self, job_id: str) -> Job:
        checked_name(job_id, "job")
        with self._changed:
            job = self._jobs.get(job_id) if _ID.fullmatch(job_id) else None
        if job is None:
            raise RequestError(404, f"no separation job '{job_id}' on this server")
        return job

    def _view(self, job: Job) -> dict[str, Any]:
        view = attrs.asdict(job)
        view["queue_position"] = self._waiting.index(job.id) + 1 if job.id in self._waiting else None
        view["files"] = [{**entry, "url": f"/api/separations/{job.id}/files/{entry['name']}"} for entry in job.files]
        return view

    def _update(self, job: Job, save: bool = False, **changes: Any) -> None:
        with self._changed:
            for key, value in changes.items():
                setattr(job, key, value)
            if save:
                self._save(job)

    def _save(self, job: Job) -> None:
        try:
            write_json_atomically(self.folder / job.id / RECORD, attrs.asdict(job))
        except UnmixError as error:  # a full disk: the job goes on; only a restart would lose it
            log.warning("cannot save the record of job %s: %s", job.id, error)

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._waiting and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                job = self._jobs[self._waiting.popleft()]
            self._run(job)

    def _run(self, job: Job) -> None:
        self._update(job, save=True, status=RUNNING, stage="starting", started=time.time())
        files = self.folder / job.id / FILES
        try:
            choice = find_choice(self.runs, job.model)
            if job.mixture is None:
                self._update(job, stage="fetching the song")
                song, mixture = fetch_link(job.source, files)
                self._update(job, save=True, song=song, mixture=mixture)
            described = separate_song(files, job.mixture, job.song, choice, self.engines,
                                      lambda **changes: self._update(job, **changes))
        except Exception as error:  # noqa: BLE001 - whatever happened, the server goes on and the job says why
            self._update(job, save=True, status=FAILED, error=self._one_line(job, error), finished=time.time())
            return
        self._update(job, save=True, status=DONE, stage="done", progress=1.0, files=described, finished=time.time())

    def _one_line(self, job: Job, error: Exception) -> str:
        """The error as the page shows it: a user's mistake as core words it, with file names relative to the
        job; anything else as one line pointing to the server's log, which gets the traceback."""
        if isinstance(error, RequestError):
            return error.message
        if isinstance(error, UnmixError):
            files = self.folder / job.id / FILES
            text = str(error).replace(f"{files.resolve()}/", "").replace(f"{files}/", "")
            return without_server_paths(text, {"--runs": self.runs, "--jobs": self.folder})
        log.error("job %s failed", job.id, exc_info=error)
        return f"separation failed with an internal error ({type(error).__name__}); the server's log has the details"

    def _load_earlier_jobs(self) -> None:
        for record in sorted(self.folder.glob(f"*/{RECORD}")):
            data = read_json(record)
            if not _ID.fullmatch(record.parent.name) or not isinstance(data, dict):
                continue
            try:
                job = Job(**data)
            except TypeError:
                log.warning("ignoring the job record %s: it was written by another version", record)
                continue
            if job.id != record.parent.name:
                continue
            if job.status in (QUEUED, RUNNING):
                job.status, job.error = FAILED, "the server stopped before this job finished; submit the song again"
                self._save(job)
            self._jobs[job.id] = job
