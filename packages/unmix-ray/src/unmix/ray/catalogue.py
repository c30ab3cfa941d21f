"""Separate a whole catalogue on a Ray cluster: the driver that hands songs to workers and keeps the records.

```python
from unmix.ray.catalogue import ModelChoice, separate_catalogue
report = separate_catalogue("songs/", "stems/", ModelChoice(run_folder="runs/20261125-guitar"), ray_address="local")
```

The driver streams songs to a pool of `SeparationWorker` actors, one song per worker at a time,
so a slow song never holds up the others and a dead worker costs only the song it held. A song
is tried up to `tries` times, whether it failed for its own reasons or because its worker died
(a replacement worker is started); after that it is recorded as failed with its error and the
catalogue goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from tqdm import tqdm

from unmix.core.errors import UnmixError
from unmix.core.separation.prediction import (
    ModelFiles,
    check_template,
    exporter_for,
    output_names,
    writes_per_song,
)
from unmix.ray.manifest import CatalogueSong, list_songs
from unmix.ray.records import FAILED, PUBLISHING, CatalogueState, SongRecord
from unmix.ray.workers import ModelChoice, OutputChoice, SeparationWorker, SongOutcome, staging_folder

if TYPE_CHECKING:
    from unmix.core.interfaces import Exporter

LOCAL = "local"
CONNECT_SECONDS = 10


@attrs.frozen
class CatalogueReport:
    songs: int
    separated: int
    already_done: int
    failed: int
    """Songs recorded as failed, in this run or (not retried) an earlier one."""
    audio_seconds: float
    """Seconds of audio separated in this run."""
    wall_seconds: float
    workers: int
    summary: Path


def separate_catalogue(spec: str, output: str | Path, model: ModelChoice, output_choice: OutputChoice | None = None,
                       *, ray_address: str = LOCAL, workers: int | None = None, threads_per_worker: int = 1,
                       tries: int = 3, retry_failed: bool = False, overwrite: bool = False,
                       progress: bool = True) -> CatalogueReport:
    """Separate every song of `spec` (folder, glob, manifest) into `output`, skipping what an earlier run finished.

    Everything that can be checked on the driver (songs, model, output settings, clashes with existing files) is
    checked before Ray starts; the model and songs must lie where every worker node sees them at the same path.
    """
    started = time.monotonic()
    if ray_address != LOCAL:
        _check_reachable(ray_address)
    output = Path(output)
    songs = list_songs(spec, output)
    files = model.model_files()
    choice = (output_choice or OutputChoice()).resolved(files)
    exporter = exporter_for(str(choice.format_name))
    check_template(str(choice.template), writes_per_song(exporter))
    state = CatalogueState(output)
    with state.locked():
        state.agree_settings(_settings(files, choice), overwrite)
        done = {song.key for song in songs if state.is_done(song.key)}
        todo = [song for song in songs if song.key not in done and (retry_failed or not _failed(state, song))]
        _refuse_clashes(todo, state, files, str(choice.template), exporter, overwrite)
        separated: list[SongRecord] = []
        worker_count = 0
        try:
            if todo:
                with _ray_cluster(ray_address, workers, threads_per_worker) as worker_count:
                    separated = _separate(todo, state, model, choice, worker_count, threads_per_worker, tries,
                                          overwrite, progress)
        finally:
            summary = state.write_summary(songs)
        failed = sum(1 for song in songs if _failed(state, song))
    return CatalogueReport(songs=len(songs), separated=len(separated), already_done=len(done),
                           failed=failed, audio_seconds=sum(record.seconds for record in separated),
                           wall_seconds=time.monotonic() - started, workers=worker_count, summary=summary)


def _failed(state: CatalogueState, song: CatalogueSong) -> bool:
    record = state.record(song.key)
    return record is not None and record.status == FAILED


def _settings(files: ModelFiles, choice: OutputChoice) -> dict[str, Any]:
    """What the stems in an output folder depend on; a second run with other settings is refused."""
    checkpoint = files.checkpoint.resolve()
    return {"model": str(checkpoint), "model_modified_ns": checkpoint.stat().st_mtime_ns,
            "target": files.settings.collection.target, **attrs.asdict(choice)}


def _refuse_clashes(todo: Sequence[CatalogueSong], state: CatalogueState, files: ModelFiles, template: str,
                    exporter: Exporter, overwrite: bool) -> None:
    """Files a song would overwrite, found before any work for songs named in advance (local files)."""
    for song in todo:
        if song.name is None:
            continue
        names = output_names(files.settings.collection.target, song.name, template, exporter.extension,
                             writes_per_song(exporter))
        problem = state.clash(song.key, list(dict.fromkeys(names.values())), overwrite)
        if problem is not None:
            raise UnmixError(f"song '{song.name}': {problem}")


@contextlib.contextmanager
def _ray_cluster(address: str, workers: int | None, threads_per_worker: int) -> Iterator[int]:
    """Start a local Ray (`local`) or join a cluster; yields how many workers to start."""
    import ray

    common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address == LOCAL:
            cpus = (workers or max(1, (os.cpu_count() or 1) // threads_per_worker)) * threads_per_worker
            ray.init(address=LOCAL, num_cpus=cpus, include_dashboard=False, **common)
        else:
            ray.init(address=address, **common)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise UnmixError(f"cannot start or reach Ray at '{address}': {_first_line(error)}; give --ray local, or the "
                         "address of a running head node (`ray start --head` prints it)") from None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        count = workers or max(1, cpus // threads_per_worker)
        yield count
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Refuse an address where no head node answers at once: Ray itself retries it for minutes before giving up."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UnmixError(f"--ray '{address}' is not HOST:PORT; give the address `ray start --head` printed, or local")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise UnmixError(f"no Ray head node answers at '{address}' ({error.strerror or error}); start one with "
                         "`ray start --head --port PORT` there, or give --ray local") from None


def _separate(todo: Sequence[CatalogueSong], state: CatalogueState, model: ModelChoice, choice: OutputChoice,
              worker_count: int, threads_per_worker: int, tries: int, overwrite: bool,
              progress: bool) -> list[SongRecord]:
    import ray

    remote_worker = ray.remote(num_cpus=threads_per_worker, max_restarts=0, max_task_retries=0)(SeparationWorker)

    def start_worker() -> Any:
        return remote_worker.remote(model, choice, str(state.staging))

    idle = [start_worker() for _ in range(worker_count)]
    try:
        ray.get([worker.describe.remote() for worker in idle])
    except ray.exceptions.RayError as error:
        raise UnmixError(f"a Ray worker could not load the model: {_worker_error(error)}; check that every node has "
                         "the same unmix packages installed and sees the model at the same path") from None
    queue = deque(todo)
    attempts: Counter[str] = Counter()
    running: dict[Any, tuple[Any, CatalogueSong]] = {}
    separated: list[SongRecord] = []
    bar = _ProgressBar(len(todo), progress)
    with bar:
        while queue or running:
            while idle and queue:
                worker, song = idle.pop(), queue.popleft()
                attempts[song.key] += 1
                running[worker.separate.remote(song)] = (worker, song)
            ready, _ = ray.wait(list(running), num_returns=1)
            worker, song = running.pop(ready[0])
            try:
                outcome: SongOutcome = ray.get(ready[0])
            except ray.exceptions.RayError as error:
                idle.append(start_worker())
                for folder in state.staging.glob(f"{song.key}.*"):
                    shutil.rmtree(folder, ignore_errors=True)
                outcome = SongOutcome(song.key, song.name or "", "", 0.0,
                                      error=f"its worker died while separating it ({_worker_error(error)})")
            else:
                idle.append(worker)
            record = _finish(song, outcome, state, attempts[song.key], overwrite)
            if record is None and attempts[song.key] < tries:
                queue.append(song)
                continue
            record = record or _failed_record(song, outcome, attempts[song.key])
            if record.status == FAILED:
                state.write(record)
            else:
                separated.append(record)
            bar.song_finished(record)
    return separated


def _finish(song: CatalogueSong, outcome: SongOutcome, state: CatalogueState, attempt: int,
            overwrite: bool) -> SongRecord | None:
    """The published song's record; None for a failed attempt (tried again if tries are left)."""
    if outcome.failed:
        return None
    record = SongRecord(key=song.key, uri=song.uri, song=outcome.song, status=PUBLISHING, seconds=outcome.seconds,
                        wall_seconds=outcome.wall_seconds, worker=outcome.worker, tries=attempt)
    staged = staging_folder(state.staging, song.key, outcome.worker)
    problem = state.clash(song.key, outcome.paths, overwrite)
    if problem is not None:
        shutil.rmtree(staged, ignore_errors=True)
        return attrs.evolve(record, status=FAILED, error=problem)
    return state.publish(record, staged, outcome.paths)


def _failed_record(song: CatalogueSong, outcome: SongOutcome, attempts: int) -> SongRecord:
    return SongRecord(key=song.key, uri=song.uri, song=outcome.song or song.name or "", status=FAILED,
                      wall_seconds=outcome.wall_seconds, worker=outcome.worker, tries=attempts, error=outcome.error)


class _ProgressBar:
    """Songs done of those to do, songs/s and the ETA (tqdm's), hours of audio per hour, and failures."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, unit="song", desc="catalogue", disable=not enabled, dynamic_ncols=True)
        self.started = time.monotonic()
        self.audio_seconds = 0.0
        self.failures = 0

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exception: object) -> None:
        self.bar.close()

    def song_finished(self, record: SongRecord) -> None:
        self.audio_seconds += record.seconds
        self.failures += record.status == FAILED
        speed = self.audio_seconds / max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{speed:.1f} audio-h/h, {self.failures} failed", refresh=False)
        self.bar.update(1)


def _worker_error(error: BaseException) -> str:
    """The line that says why, out of Ray's multi-line report of a failed actor."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error:" in line:
            return line
    return lines[-1] if lines else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
