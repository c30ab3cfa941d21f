"""The training-data cache: every song decoded and resampled once, stored memory-mappable.

`unmix generate --path RAW --destination DATA` (the seed's trainingdata_generator) and
`ensure_cache` write::

    DATA/index.json                         what is cached, and with which settings
    DATA/<collection>/<song>/target.npy     float32 (channels, frames): the target stem(s), summed
    DATA/<collection>/<song>/rest.npy       float32 (channels, frames): every other stem, summed

Decisions:

- One cache folder holds one setting (sample rate, channels, target). Generating into a folder
  that holds another setting is an error that says so; use one destination per setting (e.g.
  `DATA-22050hz-mono`). Mixing settings in one index would make every reader check every song.
- A song is done when its index entry exists, its two .npy files exist with the shapes the entry
  records, and the checksum of its source files still matches. The checksum is a sha1 over each
  source file's name, stream, size and modification time (not its bytes: a MUSDB-sized collection
  would be read twice per run), so an edited or replaced source is generated again.
- Writes are atomic: each .npy goes to a hidden temporary name, is flushed to disk and renamed;
  the index is rewritten the same way after each song, and a song's entry is removed before its
  files are rewritten. A run killed at any moment (even SIGKILL) leaves only complete songs in
  the index; leftover temporary files are removed by the next run.
- Songs that cannot be used are skipped and reported, and the run goes on: unreadable, empty or
  header-only files, a missing rest stem, a NaN or infinite sample (named with its position: it
  would turn every loss into nan), a silent target (peak below -80 dBFS), a song shorter than
  0.1 s. Stems of one song with different lengths are trimmed to the shortest
  (reported when they differ by more than 10 ms; smaller differences, from resampling or codec
  frame rounding, are trimmed silently), so a partly truncated mp3 that still decodes keeps its
  intact part. Different sample rates are all resampled (soxr). Several target or rest files are
  summed. Errors writing DATA (disk full, permissions) stop the run with one line: every song
  after would fail the same way.
- `generate_cache` returns a report; `unmix generate` exits 0 when the cache holds at least one
  song of RAW afterwards (skipped songs are listed as warnings) and 2 when none could be cached.
- Songs are processed in (collection, name) order, in parallel worker processes when jobs > 1
  (spawned, not forked, and they exit when the parent dies). One writer per cache: a lock file
  (`DATA/.lock`) makes a second concurrent run fail with a clear message. Workers ignore SIGINT;
  on Ctrl-C the parent stops them, removes what they were writing and re-raises.
- Streaming: a stem is decoded, resampled (soxr's ResampleStream) and written `BLOCK_FRAMES` at a
  time, through a temporary file of interleaved frames, so memory does not grow with the song's
  length (an hour-long song needs what a short one does). Multi-channel sources (5.1, 7.1) are
  mixed down keeping the centre channel, where a voice usually is.
- Without a target, the instrument the file names designate is used (`infer_target`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from unmix.core.data import ffmpeg
from unmix.core.data.collection import AUTO, SkippedSong, infer_target, printable, scan_tracks, song_key
from unmix.core.data.tracks import SongAudio, StemFile, Track
from unmix.core.errors import AudioError, UnmixError
from unmix.core.files import AtomicFile, atomic_path

__all__ = [
    "CacheSettings",
    "CachedSong",
    "GenerateReport",
    "default_cache_folder",
    "ensure_cache",
    "generate_cache",
    "is_cache",
    "load_stem",
    "open_cache",
    "open_songs",
]

log = logging.getLogger("unmix.cache")

INDEX = "index.json"
FORMAT = "unmix-cache"
VERSION = 1
TARGET_FILE = "target.npy"
REST_FILE = "rest.npy"
LOCK_FILE = ".lock"
SILENCE_PEAK = 1e-4  # -80 dBFS
LENGTH_TOLERANCE_S = 0.01
MIN_SECONDS = 0.1
BLOCK_FRAMES = 65536  # decoded and written per step: bounds memory
_TEMPORARY_SUFFIX = ".tmp"


@attrs.frozen
class CacheSettings:
    """What every song in one cache folder shares."""

    sample_rate: int = 22050
    channels: int = 1
    target: str = "vocals"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.sample_rate, int) or isinstance(self.sample_rate, bool) or \
                not 1000 <= self.sample_rate <= 384000:
            raise UnmixError(f"sample rate {self.sample_rate!r} is out of range; use 1000 to 384000 Hz")
        if self.channels not in (1, 2):
            raise UnmixError(f"channels {self.channels!r} is not supported; use 1 (mono) or 2 (stereo)")
        if not self.target or not self.target.strip():
            raise UnmixError("no target instrument given; name one, e.g. vocals")

    def describe(self) -> str:
        layout = "mono" if self.channels == 1 else "stereo"
        return f"{self.sample_rate} Hz, {layout}, target '{self.target}'"


@attrs.frozen
class CachedSong:
    """One song of a cache; `load()` maps its stems into memory without reading them."""

    name: str
    collection: str
    folder: Path
    sample_rate: int
    channels: int
    frames: int
    checksum: str = ""

    @property
    def target_path(self) -> Path:
        return self.folder / TARGET_FILE

    @property
    def rest_path(self) -> Path:
        return self.folder / REST_FILE

    def load(self) -> SongAudio:
        """The two stems as read-only memory-mapped float32 (channels, frames) arrays."""
        target = _map(self.target_path, self)
        rest = _map(self.rest_path, self)
        return SongAudio(name=self.name, collection=self.collection, sample_rate=self.sample_rate,
                         target=target, rest=rest)


# np.load parses each file's header with ast.literal_eval, which CPython 3.11 (seen on 3.11.7, 30
# minutes into a training; python/cpython#106905) can fail with "SystemError: AST constructor
# recursion depth mismatch" when threads parse at the same time, as the batch source's workers
# opening songs do: one header is read at a time.
_HEADER_LOCK = threading.Lock()


def _map(path: Path, song: CachedSong) -> np.ndarray:
    try:
        with _HEADER_LOCK:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise AudioError(f"the cached stem '{path}' cannot be read ({error}); run `unmix generate` again "
                         "to rebuild it") from None
    if array.dtype != np.float32 or array.shape != (song.channels, song.frames):
        raise AudioError(f"the cached stem '{path}' is damaged (shape {array.shape}, {array.dtype}; the index says "
                         f"({song.channels}, {song.frames}) float32); run `unmix generate` again")
    return array


@attrs.frozen
class GenerateReport:
    """What a `generate_cache` run did; `songs` are the cached songs of the raw folder."""

    destination: Path
    settings: CacheSettings
    generated: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    skipped: tuple[SkippedSong, ...] = ()
    notes: tuple[str, ...] = ()
    songs: tuple[CachedSong, ...] = ()


# --------------------------------------------------------------------------------------------
# Reading stems


def load_stem(stem: StemFile, channels: int | None = None) -> tuple[np.ndarray, int]:
    """Decode one stem at its native rate: (float32 (channels, frames), sample rate).

    `stem.stream` None reads the file (soundfile, then ffmpeg); a number N reads its N-th audio
    stream (0-based, as ffmpeg's `-map 0:a:N`), for multi-stream files such as MUSDB18's .stem.mp4.
    """
    from unmix.core.data.audio import load_audio

    if stem.stream is None:
        audio = load_audio(stem.path, channels=channels)
        return audio.samples, audio.sample_rate
    return _read_stream(Path(stem.path), int(stem.stream), channels)


def _read_stream(path: Path, stream: int, channels: int | None) -> tuple[np.ndarray, int]:
    prefix = f"cannot read audio stream {stream} of '{path}'"
    if not path.is_file():
        raise AudioError(f"{prefix}: the file does not exist; check the path")
    if path.stat().st_size == 0:
        raise AudioError(f"{prefix}: the file is empty (0 bytes); replace it with a complete file")
    if not ffmpeg.installed("ffmpeg"):
        raise AudioError(f"{prefix}: reading multi-stream files needs ffmpeg; install it, e.g. apt-get install ffmpeg")
    try:
        samples, rate = ffmpeg.decode_file(path, stream)
    except OSError as error:
        raise AudioError(f"{prefix}: cannot run ffmpeg ({error}); install ffmpeg") from None
    except ffmpeg.FfmpegError as error:
        raise _stream_error(prefix, error, "ffmpeg") from None
    if samples is None or samples.shape[1] == 0:
        raise AudioError(f"{prefix}: it contains no audio samples (empty, truncated or corrupt); replace it")
    have = samples.shape[0]
    if channels is None or channels == have:
        return samples, int(rate)
    if channels == 1:
        return samples.mean(axis=0, keepdims=True, dtype=np.float32), int(rate)
    if have == 1:
        return np.repeat(samples, channels, axis=0), int(rate)
    if channels < have:
        return np.ascontiguousarray(samples[:channels]), int(rate)
    raise AudioError(f"{prefix}: it has {have} channels and {channels} were asked for; ask for at most {have}")


def _stem_label(stem: StemFile) -> str:
    return stem.path.name if stem.stream is None else f"{stem.path.name} (stream {stem.stream})"


# --------------------------------------------------------------------------------------------
# Building one song (runs in a worker process)


@attrs.frozen
class _Job:
    track: Track
    destination: Path
    relative: str
    settings: CacheSettings
    checksum: str


@attrs.frozen
class _Result:
    key: tuple[str, str]
    status: str  # "written", "skipped" or "fatal"
    entry: dict[str, Any] | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()


def _build_song(job: _Job) -> _Result:
    """Stream every stem of the song into the cache: memory stays a few blocks whatever the song's length.

    Each stem is decoded block by block, resampled (soxr, streaming) and appended to a temporary
    file of interleaved frames; the summed target and rest are then written column by column into
    their .npy files. Nothing of the song is renamed into place until both files are complete.
    """
    track, settings = job.track, job.settings
    key = song_key(track)
    folder = job.destination / job.relative
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_temporaries(folder)
    except OSError as error:
        return _Result(key, "fatal", reason=_write_failure(folder, error))
    decoded: list[_DecodedStem] = []
    try:
        try:
            for role, stems in (("target", track.target), ("rest", track.rest)):
                for stem in stems:
                    decoded.append(_decode_stem(stem, role, settings, folder))
        except AudioError as error:
            return _Result(key, "skipped", reason=str(error))
        return _combine_stems(job, decoded, folder)
    except OSError as error:
        return _Result(key, "fatal", reason=_write_failure(folder, error))
    finally:
        for stem in decoded:
            _remove_quietly(stem.path)
        _remove_if_empty(folder)


def _remove_if_empty(folder: Path) -> None:
    """A skipped song leaves no empty folder in the cache."""
    try:
        folder.rmdir()
    except OSError:
        pass  # it holds the song (or an earlier version of it)


def _write_failure(folder: Path, error: OSError) -> str:
    return (f"cannot write to the cache folder '{folder}': {error.strerror or error}; free some space or choose "
            "another destination")


@attrs.frozen
class _DecodedStem:
    """One stem resampled into a temporary file of interleaved float32 frames."""

    role: str
    stem: StemFile
    path: Path
    frames: int
    native_rate: int


def _decode_stem(stem: StemFile, role: str, settings: CacheSettings, folder: Path) -> _DecodedStem:
    from unmix.core.data.audio import check_finite
    from unmix.core.data.streaming import Resampler

    name = TARGET_FILE if role == "target" else REST_FILE
    path = folder / f".{name}.{uuid.uuid4().hex}.stem{_TEMPORARY_SUFFIX}"
    rate, blocks = _stem_blocks(stem, settings.channels)
    resampler = Resampler(rate, settings.sample_rate, settings.channels)
    position = frames = 0
    try:
        with open(path, "wb") as handle:
            for block in blocks:
                check_finite(block, f"'{_stem_label(stem)}'", position)
                position += block.shape[1]
                frames += _append_frames(handle, resampler.process(block))
            if position == 0:
                raise AudioError(f"'{_stem_label(stem)}' contains no audio samples (empty, truncated or corrupt); "
                                 "replace it")
            flushed = resampler.process(np.zeros((settings.channels, 0), np.float32), last=True)
            frames += _append_frames(handle, flushed)
    except BaseException:
        _remove_quietly(path)
        raise
    return _DecodedStem(role=role, stem=stem, path=path, frames=frames, native_rate=rate)


def _append_frames(handle: Any, block: np.ndarray) -> int:
    handle.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
    return int(block.shape[1])


def _stem_blocks(stem: StemFile, channels: int) -> tuple[int, Iterator[np.ndarray]]:
    """(native sample rate, float32 (channels, frames) blocks) of one stem, decoded as it is read."""
    from unmix.core.data.streaming import AudioReader

    if stem.stream is None:
        _refuse_header_only(stem)
        reader = AudioReader(Path(stem.path))
        prefix = f"'{_stem_label(stem)}'"
        return reader.info.sample_rate, (_to_channels(block, channels, prefix)
                                         for block in reader.blocks(BLOCK_FRAMES))
    rate, have = _probe_stream(Path(stem.path), int(stem.stream))
    return rate, _multistream_blocks(Path(stem.path), int(stem.stream), rate, have, channels)


def _refuse_header_only(stem: StemFile) -> None:
    """A file libsndfile reads as 0 frames is a header without audio: say so, instead of the decoder
    fallback's "convert it", which would not help."""
    import soundfile

    try:
        frames = soundfile.info(str(stem.path)).frames
    except (RuntimeError, OSError):
        return  # not a format libsndfile knows: the reader tries ffmpeg
    if frames == 0:
        raise AudioError(f"'{_stem_label(stem)}' holds a header but no audio samples (0 frames, truncated or "
                         "never written); replace it with the complete file")


def _to_channels(block: np.ndarray, channels: int, prefix: str) -> np.ndarray:
    """Mono is the mean of all channels; stereo from more than two (5.1, 7.1, ...) keeps front left and
    right and mixes the others (centre, LFE, surround) equally into both, so a centred voice is kept."""
    have = block.shape[0]
    if have == channels:
        return block
    if channels == 1:
        return block.mean(axis=0, keepdims=True, dtype=np.float32)
    if have == 1:
        return np.repeat(block, channels, axis=0)
    if channels == 2:
        others = block[2:].mean(axis=0, dtype=np.float32)
        return np.ascontiguousarray(0.5 * block[:2] + 0.5 * others, dtype=np.float32)
    raise AudioError(f"{prefix}: it has {have} channels and {channels} were asked for; ask for at most {have}")


def _probe_stream(path: Path, stream: int) -> tuple[int, int]:
    prefix = f"cannot read audio stream {stream} of '{path}'"
    if not path.is_file():
        raise AudioError(f"{prefix}: the file does not exist; check the path")
    if path.stat().st_size == 0:
        raise AudioError(f"{prefix}: the file is empty (0 bytes); replace it with a complete file")
    if not ffmpeg.installed("ffprobe", "ffmpeg"):
        raise AudioError(f"{prefix}: reading multi-stream files needs ffmpeg; install it, e.g. apt-get install ffmpeg")
    try:
        found = ffmpeg.probe(path, stream)
    except ffmpeg.FfmpegError as error:
        raise _stream_error(prefix, error, "ffprobe") from None
    return found.sample_rate, found.channels


def _stream_error(prefix: str, error: ffmpeg.FfmpegError, tool: str) -> AudioError:
    """One wording for a multi-stream file that ffmpeg (decoding) or ffprobe (probing) refused."""
    if error.missing_stream:
        return AudioError(f"{prefix}: the file has no such audio stream; a MUSDB18 .stem.mp4 has 5 (mixture, "
                          "drums, bass, other, vocals)")
    reason = ffmpeg.error_line(error.stderr) or f"{tool} exit status {error.returncode}"
    return AudioError(f"{prefix}: not a readable audio file (ffmpeg: {reason}); replace it")


def _multistream_blocks(path: Path, stream: int, rate: int, have: int, channels: int) -> Iterator[np.ndarray]:
    prefix = f"cannot read audio stream {stream} of '{path}'"
    with ffmpeg.RawDecoder(path, stream, rate, have) as decoder:
        for block in decoder.blocks(BLOCK_FRAMES):
            yield _to_channels(block, channels, prefix)


def _combine_stems(job: _Job, decoded: Sequence[_DecodedStem], folder: Path) -> _Result:
    settings, track = job.settings, job.track
    key = song_key(track)
    notes: list[str] = []
    rates = sorted({stem.native_rate for stem in decoded})
    if len(rates) > 1:
        notes.append(f"stems have different sample rates ({', '.join(map(str, rates))} Hz); all were resampled "
                     f"to {settings.sample_rate} Hz")
    frames = min(stem.frames for stem in decoded)
    if max(stem.frames for stem in decoded) - frames > LENGTH_TOLERANCE_S * settings.sample_rate:
        described = ", ".join(f"{_stem_label(stem.stem)} {stem.frames / settings.sample_rate:.2f} s"
                              for stem in decoded)
        notes.append(f"stems differ in length ({described}); trimmed to the shortest, "
                     f"{frames / settings.sample_rate:.2f} s")
    if frames < MIN_SECONDS * settings.sample_rate:
        return _Result(key, "skipped", reason=f"the song is only {frames / settings.sample_rate:.3f} s long after "
                                              f"trimming its stems to the shortest (at least {MIN_SECONDS} s "
                                              "needed); replace the short stem")
    written: list[AtomicFile] = []
    try:
        peaks = {}
        for role, name in (("target", TARGET_FILE), ("rest", REST_FILE)):
            parts = [stem.path for stem in decoded if stem.role == role]
            written.append(AtomicFile(folder / name))
            peaks[role] = _write_summed_npy(written[-1].temporary, parts, frames, settings.channels)
        if peaks["target"] < SILENCE_PEAK:
            files = ", ".join(_stem_label(stem) for stem in track.target)
            return _Result(key, "skipped", reason=f"the target stem ({files}) is silent (peak below -80 dBFS); "
                                                  "there is nothing to learn from it")
        for file in written:
            file.commit()
        written.clear()
    finally:
        for file in written:
            file.discard()
    entry = {
        "song": track.name,
        "collection": track.collection,
        "folder": job.relative,
        "stems": {
            "target": [_stem_entry(stem) for stem in track.target],
            "rest": [_stem_entry(stem) for stem in track.rest],
        },
        "sample_rate": settings.sample_rate,
        "channels": settings.channels,
        "frames": int(frames),
        "checksum": job.checksum,
    }
    return _Result(key, "written", entry=entry, notes=tuple(notes))


def _write_summed_npy(path: Path, parts: Sequence[Path], frames: int, channels: int) -> float:
    """Write the sum of interleaved stem files as a (channels, frames) float32 .npy, block by block; the peak.

    Plain writes at computed offsets rather than a memory map, whose dirty pages would count
    against the process's memory for the whole song.
    """
    sources = [open(part, "rb") for part in parts]
    peak = 0.0
    try:
        with open(path, "wb") as handle:
            np.lib.format.write_array_header_1_0(
                handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                         "shape": (channels, frames)})
            start_of_data = handle.tell()
            handle.truncate(start_of_data + channels * frames * 4)
            for start in range(0, frames, BLOCK_FRAMES):
                count = min(BLOCK_FRAMES, frames - start)
                total = np.zeros((count, channels), dtype=np.float32)
                for source in sources:
                    total += np.fromfile(source, dtype=np.float32, count=count * channels).reshape(count, channels)
                peak = max(peak, float(np.max(np.abs(total))))
                for channel in range(channels):
                    handle.seek(start_of_data + (channel * frames + start) * 4)
                    handle.write(np.ascontiguousarray(total[:, channel]).tobytes())
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for source in sources:
            source.close()
    return peak


def _stem_entry(stem: StemFile) -> dict[str, Any]:
    return {"path": os.path.abspath(stem.path), "stream": stem.stream}


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True, ensure_ascii=False)
        handle.write("\n")


def _remove_temporaries(folder: Path, recursive: bool = False) -> None:
    """Remove what a killed run left half-written in `folder` (only unmix's own temporary names)."""
    for name in (TARGET_FILE, REST_FILE, INDEX):
        pattern = f".{name}.*{_TEMPORARY_SUFFIX}"
        for leftover in folder.rglob(pattern) if recursive else folder.glob(pattern):
            _remove_quietly(leftover)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit when the generating process is gone (killed), instead of waiting forever;
    leave Ctrl-C to the parent, which stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="unmix-parent-watch").start()


# --------------------------------------------------------------------------------------------
# The index


def _relative_folder(track: Track) -> str:
    def clean(part: str) -> str:
        part = part.replace("\\", "_").replace("/", "_").strip()
        return "_" if part in ("", ".", "..") else part

    parts = [clean(part) for part in str(track.collection).split("/")] + [clean(str(track.name))]
    return "/".join(parts)


def _checksum(track: Track) -> str:
    """sha1 over each source file's role, name, stream, size and modification time."""
    described = []
    for role, stems in (("target", track.target), ("rest", track.rest)):
        for stem in stems:
            stat = os.stat(stem.path)
            described.append([role, Path(stem.path).name, stem.stream, stat.st_size, stat.st_mtime_ns])
    return "sha1:" + hashlib.sha1(json.dumps(described).encode("utf-8")).hexdigest()


def _empty_index(settings: CacheSettings) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "dtype": "float32", "sample_rate": settings.sample_rate,
            "channels": settings.channels, "target": settings.target, "songs": {}}


def _read_index(folder: Path) -> dict[str, Any]:
    path = folder / INDEX
    try:
        with open(path, encoding="utf-8") as handle:
            index = json.load(handle)
    except FileNotFoundError:
        raise UnmixError(f"'{folder}' is not an unmix cache (it has no {INDEX}); create one with "
                         f"`unmix generate --path RAW --destination {folder}`") from None
    except (OSError, ValueError) as error:
        raise UnmixError(f"the cache index '{path}' cannot be read ({error}); delete the folder '{folder}' and "
                         "run `unmix generate` again") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("songs"), dict):
        raise UnmixError(f"'{path}' is not an unmix cache index; choose another destination or delete it")
    if index.get("version") != VERSION:
        raise UnmixError(f"the cache '{folder}' was written by another unmix version (format {index.get('version')}, "
                         f"this one reads {VERSION}); delete it and run `unmix generate` again")
    return index


def _index_settings(index: dict[str, Any]) -> CacheSettings:
    try:
        return CacheSettings(sample_rate=int(index["sample_rate"]), channels=int(index["channels"]),
                             target=str(index["target"]))
    except (KeyError, TypeError, ValueError, UnmixError) as error:
        raise UnmixError(f"the cache index is missing its settings ({error}); delete the cache and generate it "
                         "again") from None


def _song_from_entry(folder: Path, entry: dict[str, Any]) -> CachedSong:
    return CachedSong(name=str(entry["song"]), collection=str(entry["collection"]),
                      folder=folder / str(entry["folder"]), sample_rate=int(entry["sample_rate"]),
                      channels=int(entry["channels"]), frames=int(entry["frames"]),
                      checksum=str(entry.get("checksum", "")))


def _entry_is_complete(folder: Path, entry: dict[str, Any]) -> bool:
    try:
        song = _song_from_entry(folder, entry)
        for path in (song.target_path, song.rest_path):
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            if array.dtype != np.float32 or array.shape != (song.channels, song.frames):
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def is_cache(folder: str | Path) -> bool:
    """Whether `folder` holds a generated cache (an index.json written by unmix)."""
    return (Path(folder) / INDEX).is_file()


def collection_target(folder: str | Path, dataset: str = AUTO) -> str:
    """The instrument a collection folder holds: a cache's recorded target, or what raw file names designate."""
    if is_cache(folder):
        return _index_settings(_read_index(Path(folder))).target
    return infer_target(folder, dataset)


def open_cache(
    folder: str | Path,
    *,
    sample_rate: int | None = None,
    channels: int | None = None,
    target: str | None = None,
) -> list[CachedSong]:
    """The songs of a generated cache, sorted by (collection, name).

    Give `sample_rate`, `channels` or `target` to check that the cache was made with them (an error
    naming both settings otherwise). Entries whose files have gone missing are left out, with a warning.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UnmixError(f"the cache folder '{folder}' does not exist; create it with "
                         f"`unmix generate --path RAW --destination {folder}`")
    index = _read_index(folder)
    settings = _index_settings(index)
    wanted = {"sample_rate": sample_rate, "channels": channels, "target": target}
    for key, value in wanted.items():
        if value is not None and getattr(settings, key) != value:
            raise UnmixError(f"the cache '{folder}' holds {settings.describe()}, but {key} {value!r} is asked for; "
                             "generate a cache with these settings into another folder")
    songs = []
    for key, entry in sorted(index["songs"].items()):
        try:
            song = _song_from_entry(folder, entry)
        except (KeyError, TypeError, ValueError):
            log.warning("the cache index entry '%s' in '%s' is incomplete and was ignored", key, folder)
            continue
        if not (song.target_path.is_file() and song.rest_path.is_file()):
            log.warning("the cached song '%s' has lost its files and was ignored; run `unmix generate` again", key)
            continue
        songs.append(song)
    songs.sort(key=song_key)
    return songs


# --------------------------------------------------------------------------------------------
# Generating


@contextmanager
def _locked(folder: Path, wait: bool = False) -> Iterator[None]:
    """One writer per cache folder. `wait`: queue behind the other writer instead of failing, as
    trainings that share a raw folder (DDP ranks, two runs) do; the later one then finds it cached."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, one writer is up to the user
        yield
        return
    try:
        handle = open(folder / LOCK_FILE, "a")  # held open for the whole run
    except OSError as error:
        raise UnmixError(f"cannot write to the cache folder '{folder}': {error.strerror or error}; "
                         "choose a writable destination") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise UnmixError(f"another `unmix generate` is writing to '{folder}'; wait for it to finish") from None
            log.info("waiting for another process that is caching '%s'", folder)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except OSError:
            pass  # a file system without locks: go on unlocked
        yield
    finally:
        handle.close()


def _prepare_destination(destination: Path) -> None:
    if destination.exists() and not destination.is_dir():
        raise UnmixError(f"the destination '{destination}' is a file, not a folder; choose a folder for the cache")
    try:
        destination.mkdir(parents=True, exist_ok=True)
        probe = destination / f".write-test.{uuid.uuid4().hex}{_TEMPORARY_SUFFIX}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UnmixError(f"cannot write the cache to '{destination}': {error.strerror or error}; choose a writable "
                         "destination") from None


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def generate_cache(
    raw_folder: str | Path,
    cache_folder: str | Path,
    *,
    sample_rate: int = 22050,
    channels: int = 1,
    target: str | None = None,
    dataset: str = AUTO,
    jobs: int | None = None,
    progress: bool = False,
    wait_for_other_writer: bool = False,
) -> GenerateReport:
    """Decode and resample every song of `raw_folder` once into the cache at `cache_folder`.

    Songs already cached with the same sources are kept; the others are generated (`jobs` worker
    processes, default: one per CPU). `target` None: the instrument the file names designate
    (`infer_target`). Raises UnmixError when the raw folder holds no songs at all, when the cache
    folder holds other settings or cannot be written; songs that cannot be used are returned in
    `GenerateReport.skipped` (the run goes on without them).
    """
    raw_folder, destination = Path(raw_folder), Path(cache_folder)
    if target is None:
        target = infer_target(raw_folder, dataset)
    settings = CacheSettings(sample_rate=sample_rate, channels=channels, target=target)
    jobs = _default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise UnmixError(f"jobs must be at least 1, got {jobs}")

    scan = scan_tracks(raw_folder, settings.target, dataset)
    if not scan.tracks and not scan.skipped:
        layouts = "any registered layout" if str(dataset).lower() == AUTO else f"the '{dataset}' layout"
        raise UnmixError(
            f"no songs for target '{settings.target}' found in '{raw_folder}' with {layouts}; expected song folders "
            f"holding '{settings.target}_<song>.<ext>' and 'rest_<song>.<ext>', or '{settings.target}.wav' beside "
            "the other stems, or MUSDB18 .stem.mp4 files"
        )
    if not scan.tracks:  # only songs that cannot be used: report them, create nothing
        return GenerateReport(destination=destination, settings=settings, skipped=scan.skipped)
    _prepare_destination(destination)
    with _locked(destination, wait=wait_for_other_writer):
        return _generate_locked(scan.tracks, scan.skipped, destination, settings, jobs, progress)


def _generate_locked(
    tracks: Sequence[Track],
    scan_skipped: Sequence[SkippedSong],
    destination: Path,
    settings: CacheSettings,
    jobs: int,
    progress: bool,
) -> GenerateReport:
    _remove_temporaries(destination, recursive=True)
    if (destination / INDEX).exists():
        index = _read_index(destination)
        existing = _index_settings(index)
        if existing != settings:
            raise UnmixError(
                f"the cache '{destination}' holds {existing.describe()}; this run asks for {settings.describe()}: "
                "choose another destination for these settings (one folder per setting) or delete that folder"
            )
    else:
        index = _empty_index(settings)
        _write_index(destination, index)

    skipped = list(scan_skipped)
    notes: list[str] = []
    reused: list[str] = []
    generated: list[str] = []
    todo: list[_Job] = []
    seen: dict[str, Track] = {}
    for track in tracks:
        relative = _relative_folder(track)
        if relative in seen:
            skipped.append(SkippedSong(track.folder, f"another song is already cached as '{relative}' "
                                                     f"(from '{seen[relative].folder}'); rename one of the folders"))
            continue
        seen[relative] = track
        try:
            checksum = _checksum(track)
        except OSError as error:
            skipped.append(SkippedSong(track.folder, f"cannot read a stem file ({error}); check it exists and "
                                                     "is readable"))
            continue
        entry = index["songs"].get(relative)
        if entry is not None and entry.get("checksum") == checksum and _entry_is_complete(destination, entry):
            reused.append(relative)
            continue
        todo.append(_Job(track=track, destination=destination, relative=relative, settings=settings,
                         checksum=checksum))

    if todo:
        stale = [job.relative for job in todo if job.relative in index["songs"]]
        for relative in stale:  # no entry may point at files about to be rewritten
            del index["songs"][relative]
        if stale:
            _write_index(destination, index)
        try:
            for result, job in _run(todo, jobs, progress, total=len(todo) + len(reused), done=len(reused)):
                label = f"{job.track.collection}/{job.track.name}"
                if result.status == "fatal":
                    raise UnmixError(result.reason)
                if result.status == "skipped":
                    skipped.append(SkippedSong(job.track.folder, result.reason))
                    continue
                notes.extend(printable(f"{label}: {note}") for note in result.notes)
                index["songs"][job.relative] = result.entry
                _write_index(destination, index)
                generated.append(job.relative)
        except KeyboardInterrupt:
            _remove_temporaries(destination, recursive=True)  # what the stopped song was writing
            raise

    skipped.sort(key=lambda song: str(song.path))
    cached = set(reused) | set(generated)
    songs = [_song_from_entry(destination, index["songs"][relative]) for relative in sorted(cached)]
    songs.sort(key=song_key)
    return GenerateReport(destination=destination, settings=settings, generated=tuple(generated),
                          reused=tuple(reused), skipped=tuple(skipped), notes=tuple(notes), songs=tuple(songs))


def _write_index(destination: Path, index: dict[str, Any]) -> None:
    try:
        _write_json(destination / INDEX, index)
    except OSError as error:
        raise UnmixError(f"cannot write the cache index in '{destination}': {error.strerror or error}; free some "
                         "space or choose another destination") from None


def _run(todo: list[_Job], jobs: int, progress: bool, total: int, done: int) -> Iterator[tuple[_Result, _Job]]:
    """Build the songs, in this process or in `jobs` spawned workers, yielding results as they finish."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="song", desc="generating", disable=None if progress else True,
               dynamic_ncols=True)
    try:
        if jobs == 1 or len(todo) == 1:
            for job in todo:
                bar.set_postfix_str(job.track.name[:40], refresh=False)
                result = _build_song(job)
                bar.update(1)
                yield result, job
            return
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context,
                                                    initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
            with _sigint_ignored():  # workers start here and inherit it: Ctrl-C is the parent's alone
                futures = {pool.submit(_build_song, job): job for job in todo}
            try:
                for future in concurrent.futures.as_completed(futures):
                    bar.update(1)
                    yield future.result(), futures[future]
            except BaseException:
                _stop_workers(pool)
                raise
            finally:
                for future in futures:
                    future.cancel()
    finally:
        bar.close()


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started: a spawned interpreter keeps an ignored
    SIGINT ignored, so a Ctrl-C reaching the whole process group interrupts only the parent, which
    stops the workers itself, instead of every worker printing its own traceback."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not this thread's to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_workers(pool: Any) -> None:
    """Interrupted: end the workers now rather than after their current song, so that no worker is
    still writing when the parent removes the temporary files."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(timeout=10)
    pool.shutdown(wait=True, cancel_futures=True)


def ensure_cache(
    raw_folder: str | Path,
    cache_folder: str | Path,
    *,
    sample_rate: int = 22050,
    channels: int = 1,
    target: str | None = None,
    dataset: str = AUTO,
    jobs: int | None = None,
    progress: bool = False,
) -> list[CachedSong]:
    """The cached songs of `raw_folder`, generating the missing ones first (training on raw folders).

    Once everything is cached this only lists files and compares checksums. Skipped songs and notes
    are logged as warnings; no usable song at all is an UnmixError.
    """
    report = generate_cache(raw_folder, cache_folder, sample_rate=sample_rate, channels=channels, target=target,
                            dataset=dataset, jobs=jobs, progress=progress, wait_for_other_writer=True)
    for note in report.notes:
        log.warning("%s", note)
    for song in report.skipped:
        log.warning("skipped %s", song.describe())
    if not report.songs:
        raise UnmixError(f"none of the {len(report.skipped)} songs found in '{raw_folder}' could be cached "
                         f"(first problem: {report.skipped[0].describe()}); fix the files and try again")
    return list(report.songs)


def default_cache_folder(raw_folder: str | Path, settings: CacheSettings) -> Path:
    """Where `open_songs` caches a raw folder by default: a hidden folder inside it, one per setting."""
    layout = "mono" if settings.channels == 1 else "stereo"
    return Path(raw_folder) / ".unmix-cache" / f"sample-rate={settings.sample_rate}_channels={layout}_" \
                                                f"target={settings.target}"


def open_songs(
    folder: str | Path,
    *,
    cache_folder: str | Path | None = None,
    sample_rate: int = 22050,
    channels: int = 1,
    target: str | None = None,
    dataset: str = AUTO,
    jobs: int | None = None,
    progress: bool = False,
) -> list[CachedSong]:
    """Songs from a cache folder, or from a raw audio folder cached on first use.

    A folder with an index.json is opened as a cache (its settings must match; `target` None accepts
    the cache's); any other folder is raw audio, cached into `cache_folder` (default:
    `default_cache_folder`, hidden inside it), `target` None inferring the instrument from its files.
    """
    if is_cache(folder):
        return open_cache(folder, sample_rate=sample_rate, channels=channels, target=target)
    if target is None:
        target = infer_target(folder, dataset)
    settings = CacheSettings(sample_rate=sample_rate, channels=channels, target=target)
    destination = Path(cache_folder) if cache_folder is not None else default_cache_folder(folder, settings)
    return ensure_cache(folder, destination, sample_rate=sample_rate, channels=channels, target=target,
                        dataset=dataset, jobs=jobs, progress=progress)
