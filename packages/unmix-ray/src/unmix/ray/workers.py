"""The Ray worker: one per process, it loads the engine once and separates the songs it is handed.

A worker only ever writes into its song's staging folder; the driver publishes the stems. A song
that fails for its own reasons (it is not audio, its link is dead) comes back as an outcome with a
one-line error, not as an exception, so that the driver can tell it from a worker that died.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import attrs

from unmix.core.errors import UnmixError
from unmix.core.interfaces import ExportOptions
from unmix.core.runs import open_run_folder
from unmix.core.separation.prediction import (
    ModelFiles,
    exporter_for,
    find_source,
    load_engine,
    model_file_model_files,
    output_names,
    run_engine_model_files,
    separate_into,
    writes_per_song,
)
from unmix.ray.manifest import CatalogueSong


@attrs.frozen
class ModelChoice:
    """The model every worker loads: a run folder (with `unmix predict`'s choice of engine) or an exported file."""

    run_folder: str | None = None
    model_file: str | None = None
    engine: str = "auto"
    batch_size: int | None = None

    def model_files(self) -> ModelFiles:
        if self.model_file is not None:
            return model_file_model_files(self.model_file)
        return run_engine_model_files(open_run_folder(str(self.run_folder)), self.engine)


@attrs.frozen
class OutputChoice:
    """How stems are written; None takes the model's prediction settings, as `unmix predict` does."""

    format_name: str | None = None
    template: str | None = None
    bit_depth: str | None = None
    peak: str | None = None

    def resolved(self, files: ModelFiles) -> OutputChoice:
        settings = files.settings.prediction
        return OutputChoice(self.format_name or settings.format, self.template or settings.filename,
                            self.bit_depth or settings.bit_depth, self.peak or settings.peak)


@attrs.frozen
class SongOutcome:
    key: str
    song: str
    worker: str
    wall_seconds: float
    paths: tuple[str, ...] = ()
    """The stems' paths inside the staging folder, which are also their paths inside the output folder."""
    seconds: float = 0.0
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)


def staging_folder(staging: Path, key: str, worker: str) -> Path:
    return staging / f"{key}.{worker}"


def worker_name() -> str:
    """host-pid: says where a song ran in the summary, and which process to look at (or kill) while it runs."""
    return f"{socket.gethostname()}-{os.getpid()}"


class SeparationWorker:
    """Wrapped by `ray.remote` in the driver; an instance lives in one Ray worker process."""

    def __init__(self, model: ModelChoice, output: OutputChoice, staging: str) -> None:
        files = model.model_files()
        self.output = output.resolved(files)
        self.engine = load_engine(files, model.batch_size)
        self.exporter = exporter_for(str(self.output.format_name))
        self.options = ExportOptions(bit_depth=self.output.bit_depth, peak=self.output.peak,
                                     bitrate_kbps=files.settings.prediction.bitrate_kbps)
        self.staging = Path(staging)
        self.name = worker_name()

    def describe(self) -> str:
        return self.name

    def separate(self, song: CatalogueSong) -> SongOutcome:
        started = time.monotonic()
        folder = staging_folder(self.staging, song.key, self.name)
        name = song.name or ""
        try:
            with tempfile.TemporaryDirectory(prefix="unmix-catalogue-") as downloads:
                found = find_source(song.uri).songs(song.uri, Path(downloads))
                if len(found) != 1:
                    raise UnmixError(f"'{song.uri}' holds {len(found)} songs; list them one per line in the manifest")
                name = song.name or found[0].name
                names = output_names(self.engine.target, name, str(self.output.template), self.exporter.extension,
                                     writes_per_song(self.exporter))
                files = {stem: folder / path for stem, path in names.items()}
                for path in files.values():
                    path.parent.mkdir(parents=True, exist_ok=True)
                result = separate_into(self.engine, found[0].path, files, self.exporter, self.options, name,
                                       progress=False)
        except Exception as error:  # noqa: BLE001 - any song's failure is recorded, and the next song goes on
            shutil.rmtree(folder, ignore_errors=True)
            message = str(error) if isinstance(error, UnmixError) else f"{type(error).__name__}: {error}"
            return SongOutcome(song.key, name, self.name, time.monotonic() - started,
                               error=" ".join(message.split()) or type(error).__name__)
        return SongOutcome(song.key, name, self.name, time.monotonic() - started,
                           paths=tuple(dict.fromkeys(names.values())), seconds=result.seconds)
