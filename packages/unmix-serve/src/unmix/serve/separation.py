"""One separation job's work, in the worker thread: fetch a link, read the mixture, load the model
(once per model and checkpoint), separate into stem files, outline every file for the page.

The stems are written by core's streaming path (`separate_into`) with the registered wav writer
in 32-bit float, so target + rest equals the mixture sample for sample and nothing is clipped;
browsers play float wav. Progress comes from counting the target's samples on their way to the
writer, so it follows what is really on disk.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from unmix.core.errors import UnmixError
from unmix.serve.model_choices import ModelChoice
from unmix.serve.peaks import Outline, outline

if TYPE_CHECKING:
    import numpy as np

    from unmix.core.interfaces import Exporter, ExportOptions, StemWriter
    from unmix.core.separation.prediction import Engine

FORMAT = "wav"
TEMPLATE = "{song}_{stem}.{ext}"
MIXTURE = "mixture"
_LONGEST_SONG = 80
_CACHED_ENGINES = 3

Report = Callable[..., None]
"""Called as report(stage=..., progress=...) with either or both."""


def song_and_file_name(filename: str, fallback: str = "song") -> tuple[str, str]:
    """A song name that is safe as a file name, and the mixture's file name (the song's own suffix kept).

    Anything but letters, digits, '-', '_' and '.' becomes '_', and no name starts with a dot, so
    whatever the browser or a source plugin calls the file, it lands inside the job folder.
    """
    base = Path(filename.replace("\\", "/")).name
    suffix = Path(base).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,6}", suffix) else ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    song = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:_LONGEST_SONG] or fallback
    return song, f"{song}{suffix}"


class EngineCache:
    """Loaded engines by model and checkpoint, so a second job with the same model starts separating
    at once; a run that saves a new best checkpoint while it trains gets reloaded."""

    def __init__(self, size: int = _CACHED_ENGINES) -> None:
        self._size = size
        self._engines: OrderedDict[tuple[str, str, int], Engine] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0
        """How many engines were built: what a test checks to see that the cache served a job."""

    def engine(self, choice: ModelChoice) -> Engine:
        from unmix.core.separation.prediction import load_engine

        files = choice.model_files()
        key = (choice.id, str(files.checkpoint), files.checkpoint.stat().st_mtime_ns)
        with self._lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
        engine = load_engine(files)
        with self._lock:
            self.loads += 1
            for stale in [cached for cached in self._engines if cached[0] == choice.id]:
                del self._engines[stale]
            self._engines[key] = engine
            while len(self._engines) > self._size:
                self._engines.popitem(last=False)
        return engine


@attrs.frozen
class _CountingWriter:
    writer: StemWriter
    counted: Callable[[int], None]

    @property
    def keeps_peaks(self) -> bool:
        return bool(getattr(self.writer, "keeps_peaks", False))

    def write(self, block: np.ndarray) -> None:
        self.writer.write(block)
        self.counted(block.shape[1])

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


@attrs.frozen
class _CountingExporter:
    """The registered exporter, with the first stem's writer counting the samples it is given."""

    exporter: Exporter
    counted: Callable[[int], None]

    @property
    def name(self) -> str:
        return self.exporter.name

    @property
    def extension(self) -> str:
        return self.exporter.extension

    def open(self, path: Path, sample_rate: int, channels: int, options: ExportOptions, *, song: str,
             stem: str | None, stems: tuple[str, ...]) -> Any:
        writer = self.exporter.open(path, sample_rate, channels, options, song=song, stem=stem, stems=stems)
        return _CountingWriter(writer, self.counted) if stem == stems[0] else writer


def fetch_link(uri: str, folder: Path) -> tuple[str, str]:
    """Download the one song behind `uri` (through the source plugin that claims it) into `folder`;
    returns the song's name and its file name there."""
    from unmix.core.separation.prediction import find_source

    source = find_source(uri)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=folder) as temporary:
        songs = source.songs(uri, Path(temporary))
        if len(songs) != 1:
            raise UnmixError(f"'{uri}' holds {len(songs)} songs; give a link to one song")
        chosen = songs[0]
        song, name = song_and_file_name(f"{chosen.name or chosen.path.stem}{chosen.path.suffix}")
        shutil.move(str(chosen.path), folder / name)
    return song, name


def separate_song(folder: Path, mixture: str, song: str, choice: ModelChoice, engines: EngineCache,
                  report: Report) -> list[dict[str, Any]]:
    """Separate `folder/mixture` into its stems beside it; returns every file for the page (mixture
    first), each with its stem, length and outline."""
    from unmix.core.interfaces import ExportOptions
    from unmix.core.separation.prediction import exporter_for, output_files, separate_into

    report(stage="reading the song")
    mixture_outline = outline(folder / mixture)
    report(stage="loading the model")
    engine = engines.engine(choice)
    total = max(mixture_outline.frames, 1)
    written = 0

    def counted(samples: int) -> None:
        nonlocal written
        written += samples
        report(progress=min(written / total, 1.0))

    report(stage="separating", progress=0.0)
    exporter = _CountingExporter(exporter_for(FORMAT), counted)
    files = output_files(engine.target, song, folder, TEMPLATE, exporter.extension)
    separate_into(engine, folder / mixture, files, exporter, ExportOptions(bit_depth="float", peak="clip"), song,
                  progress=False)
    report(stage="drawing waveforms", progress=1.0)
    described = [_described(mixture, MIXTURE, mixture_outline)]
    described.extend(_described(path.name, stem, outline(path)) for stem, path in files.items())
    return described


def _described(name: str, stem: str, found: Outline) -> dict[str, Any]:
    return {"name": name, "stem": stem, "seconds": round(found.seconds, 3), "peaks": list(found.peaks)}
