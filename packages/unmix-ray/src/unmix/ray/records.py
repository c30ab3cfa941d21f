"""What a catalogue has done, kept beside its stems so that a second run knows what is left.

```
OUTPUT/
    <song>_<target>.wav, <song>_rest.wav   the stems, named as `unmix predict` names them
    catalogue-summary.csv                   every song: status, seconds of audio, wall seconds, worker, error
    .unmix-catalogue/
        settings.json                       the model and output settings the stems were made with
        records/<song key>.json             one per song: done (its files' sizes and times) or failed (its error)
        staging/<song key>.<worker>/        where a worker writes a song's stems before they are published
        lock                                held by the one catalogue run that writes into OUTPUT
```

Only the driver moves stems out of staging and writes records, so every file is published once,
by one process; a worker killed mid-song leaves only its staging folder, which is removed. A song
counts as done when its record says so and every file it lists still has the size and
modification time recorded when it was published: a file deleted or replaced since is made again.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from unmix.core.errors import UnmixError
from unmix.core.files import raise_write_error, write_json_atomically, write_text_atomically
from unmix.ray.manifest import CatalogueSong

STATE_FOLDER = ".unmix-catalogue"
SUMMARY_FILE = "catalogue-summary.csv"
SUMMARY_COLUMNS = ("song", "uri", "status", "seconds", "wall_seconds", "worker", "tries", "error", "files")
DONE, FAILED, PUBLISHING, PENDING = "done", "failed", "publishing", "pending"


@attrs.frozen
class PublishedFile:
    """A stem as published: its path inside the output folder and what `os.stat` said right after."""

    path: str
    size: int
    mtime_ns: int


@attrs.frozen
class SongRecord:
    key: str
    uri: str
    song: str
    status: str
    """done, failed, or publishing (its stems were being moved into place when the driver stopped)."""
    files: tuple[PublishedFile, ...] = ()
    seconds: float = 0.0
    """Seconds of audio."""
    wall_seconds: float = 0.0
    worker: str = ""
    tries: int = 0
    error: str = ""


class CatalogueState:
    """The `.unmix-catalogue` folder of one output folder."""

    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.folder = self.output / STATE_FOLDER
        self.staging = self.folder / "staging"
        self._records_folder = self.folder / "records"
        self._records: dict[str, SongRecord] = {}
        self._owners: dict[str, str] = {}

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the output folder for this run: two runs publishing into one folder would race for its files."""
        try:
            self._records_folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.folder / "lock", "a+")  # noqa: SIM115 - held for the whole run
        except OSError as error:
            raise UnmixError(f"cannot write into output folder '{self.output}': {error.strerror}; "
                             "choose another --output") from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UnmixError(f"another `unmix catalogue` is writing into '{self.output}'; wait for it to end, "
                                 "or choose another --output") from None
            shutil.rmtree(self.staging, ignore_errors=True)
            self._load_records()
            yield

    def agree_settings(self, settings: Mapping[str, Any], overwrite: bool) -> None:
        """Refuse to mix stems of two models (or formats) in one folder; `overwrite` starts it afresh."""
        path = self.folder / "settings.json"
        earlier = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if earlier is not None and earlier != dict(settings) and not overwrite:
            changed = ", ".join(key for key in sorted(set(earlier) | set(settings))
                                if earlier.get(key) != settings.get(key))
            raise UnmixError(f"output folder '{self.output}' holds stems made with other settings (changed: "
                             f"{changed}); choose another --output, or pass --overwrite to separate every song again")
        if overwrite:
            shutil.rmtree(self._records_folder, ignore_errors=True)
            self._records_folder.mkdir(parents=True)
            self._records, self._owners = {}, {}
        if earlier != dict(settings):
            write_json_atomically(path, dict(settings))

    def record(self, key: str) -> SongRecord | None:
        return self._records.get(key)

    def is_done(self, key: str) -> bool:
        record = self._records.get(key)
        return record is not None and record.status == DONE and all(_unchanged(self.output / file.path, file)
                                                                    for file in record.files)

    def clash(self, key: str, paths: Sequence[str], overwrite: bool) -> str | None:
        """Why song `key` may not write `paths` (relative to the output folder), or None when it may."""
        for path in paths:
            owner = self._owners.get(path)
            if owner is not None and owner != key:
                return f"'{path}' is already a stem of '{self._records[owner].uri}'; rename one of the songs"
            if owner is None and not overwrite and (self.output / path).exists():
                return (f"'{self.output / path}' already exists and was not written by this catalogue; pass "
                        "--overwrite to replace it, or choose another --output")
        return None

    def publish(self, record: SongRecord, staged: Path, paths: Sequence[str]) -> SongRecord:
        """Move a song's stems from its staging folder into place, then record them as done.

        The record says `publishing` while they move, so a driver stopped half way leaves a
        song that counts as not done and whose files it may replace.
        """
        self.write(attrs.evolve(record, status=PUBLISHING,
                                files=tuple(PublishedFile(path, -1, -1) for path in paths)))
        published = []
        for path in paths:
            destination = self.output / path
            try:
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged / path, destination)
                status = destination.stat()
            except OSError as error:
                raise_write_error(destination, error)
            published.append(PublishedFile(path, status.st_size, status.st_mtime_ns))
        shutil.rmtree(staged, ignore_errors=True)
        done = attrs.evolve(record, status=DONE, files=tuple(published), error="")
        self.write(done)
        return done

    def write(self, record: SongRecord) -> None:
        write_json_atomically(self._records_folder / f"{record.key}.json", attrs.asdict(record))
        self._records[record.key] = record
        for file in record.files:
            self._owners[file.path] = record.key

    def write_summary(self, songs: Sequence[CatalogueSong]) -> Path:
        """catalogue-summary.csv: one row per song of this catalogue, pending ones included."""
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(SUMMARY_COLUMNS)
        for song in songs:
            record = self._records.get(song.key) or SongRecord(song.key, song.uri, song.name or "", PENDING)
            status = record.status if record.status != DONE or self.is_done(song.key) else PENDING
            writer.writerow([record.song, record.uri, status, f"{record.seconds:.2f}", f"{record.wall_seconds:.2f}",
                             record.worker, record.tries, record.error,
                             " ".join(file.path for file in record.files if status == DONE)])
        path = self.output / SUMMARY_FILE
        write_text_atomically(path, text.getvalue())
        return path

    def _load_records(self) -> None:
        for path in sorted(self._records_folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                record = SongRecord(**{**data, "files": tuple(PublishedFile(**file) for file in data["files"])})
            except (OSError, ValueError, TypeError, KeyError):
                continue  # an unreadable record is a song to do again, not a reason to stop
            self._records[record.key] = record
            for file in record.files:
                self._owners[file.path] = record.key


def _unchanged(path: Path, published: PublishedFile) -> bool:
    try:
        status = path.stat()
    except OSError:
        return False
    return status.st_size == published.size and status.st_mtime_ns == published.mtime_ns
