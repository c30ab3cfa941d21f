"""Stem writers: wav, flac, ogg (Vorbis) and mp3, streamed block by block and written atomically.

Why they look the way they do:

- Streaming. The prediction engine hands over one block of separated audio at a time so that
  memory does not grow with the length of a song; writers therefore encode each block as it
  comes and keep nothing else in memory.
- Whole or not at all. Audio goes to a hidden temporary file beside the destination (same file
  system, so the final `os.replace` is atomic) and only `close()` moves it into place. `abort()`,
  an exception inside a `with` block, a failed write or a full disk remove the temporary file, so
  a killed or failed `unmix predict` never leaves a truncated stem that looks finished.
- Peaks above full scale are never wrapped. Integer encoders turn 1.5 into a large negative
  number; the writers therefore always apply the `peak` option first, for every format, so a
  file never holds samples beyond [-1, 1] whichever format it is:
  * `clip` clips each block to [-1, 1] (the default: streaming, and separated stems of a mix
    that was within full scale rarely exceed it by much);
  * `normalize` scales the whole file down to a peak of -0.1 dBFS, but only when its peak is
    above full scale. Quieter files are left untouched, so stems that fit keep their level and
    target + rest still add up to the mix. Knowing the peak needs the whole file: blocks go to
    a float32 scratch file beside the destination while the peak is tracked, and close()
    re-reads that file block by block and encodes it, so memory still stays at one block.
- Formats: wav (16-bit, 24-bit or 32-bit float), flac (16 or 24-bit), ogg (Vorbis, quality from
  the bitrate), mp3 (libsndfile's LAME encoder at a constant bitrate when the installed
  libsndfile has MPEG support, otherwise ffmpeg's libmp3lame through a pipe).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Protocol

import numpy as np

from unmix.core.errors import AudioError
from unmix.core.interfaces import ExportOptions

__all__ = [
    "EXPORTERS",
    "FlacExporter",
    "Mp3Exporter",
    "OggExporter",
    "StreamingStemWriter",
    "WavExporter",
]

NORMALIZED_PEAK_DBFS = -0.1
_NORMALIZED_PEAK = float(10 ** (NORMALIZED_PEAK_DBFS / 20))
_READ_BACK_FRAMES = 65536

_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# libsndfile turns a compression level in [0, 1] into a constant bitrate linearly over the range of
# the MPEG version that the sample rate implies: (lowest rate of the version, kbps range).
_MP3_BITRATE_RANGES = ((32000, (32, 320)), (16000, (8, 160)), (0, (8, 64)))
# Vorbis quality levels 0..10 and their nominal bitrates for stereo 44.1 kHz (libvorbis docs).
_VORBIS_QUALITY_KBPS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 500)


class _Encoder(Protocol):
    """Writes blocks already within [-1, 1] to one file; knows nothing about atomicity."""

    def write(self, block: np.ndarray) -> None: ...

    def finish(self) -> None:
        """Flush and close the file: after this it is a complete, valid file."""
        ...

    def discard(self) -> None:
        """Release the file or process after a failure; the caller deletes the file."""
        ...


OpenEncoder = Callable[[Path], _Encoder]


# --------------------------------------------------------------------------------------------
# The writer: validation, peak policy, atomic commit


class StreamingStemWriter:
    """A `StemWriter` that encodes through an `_Encoder` into a hidden file renamed on close().

    Usable as a context manager: leaving the block normally closes the writer, leaving it with an
    exception aborts it.
    """

    def __init__(self, path: Path, channels: int, options: ExportOptions, open_encoder: OpenEncoder) -> None:
        self.path = Path(path)
        self.channels = channels
        self._temporary = _hidden_sibling(self.path, "part")
        self._state = "open"
        self._scratch: _PeakScratch | None = None
        try:
            if options.peak == "normalize":
                self._scratch = _PeakScratch(_hidden_sibling(self.path, "f32"), channels)
            self._encoder = open_encoder(self._temporary)
        except BaseException as error:
            self._remove_files()
            _raise_as_user_error(self.path, error)

    def write(self, block: np.ndarray) -> None:
        self._require_open()
        block = self._checked(block)
        if block.shape[1] == 0:
            return
        try:
            if self._scratch is not None:
                self._scratch.append(block)
            else:
                self._encoder.write(np.clip(block, -1.0, 1.0))
        except BaseException as error:
            self.abort()
            _raise_as_user_error(self.path, error)

    def close(self) -> None:
        if self._state == "closed":
            return
        self._require_open()
        try:
            if self._scratch is not None:
                self._encode_normalized(self._scratch)
            self._encoder.finish()
            _flush_to_disk(self._temporary)
            os.replace(self._temporary, self.path)
        except BaseException as error:
            self.abort()
            _raise_as_user_error(self.path, error)
        self._state = "closed"
        self._remove_files()

    def abort(self) -> None:
        """Idempotent, and a no-op once closed: a finished file is never taken back."""
        if self._state != "open":
            return
        self._state = "aborted"
        encoder = getattr(self, "_encoder", None)
        if encoder is not None:
            try:
                encoder.discard()
            except Exception:  # the files go anyway; a second error must not hide the first
                pass
        self._remove_files()

    def __enter__(self) -> StreamingStemWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _encode_normalized(self, scratch: _PeakScratch) -> None:
        gain = _NORMALIZED_PEAK / scratch.peak if scratch.peak > 1.0 else 1.0
        for block in scratch.blocks():
            self._encoder.write(np.clip(block * np.float32(gain), -1.0, 1.0))

    def _checked(self, block: np.ndarray) -> np.ndarray:
        """Shape and content errors are caller bugs: fail before anything reaches the file."""
        array = np.asarray(block, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != self.channels:
            raise ValueError(
                f"blocks for '{self.path}' must be float32 ({self.channels}, samples), got shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"a block for '{self.path}' contains NaN or infinite samples")
        return array

    def _require_open(self) -> None:
        if self._state != "open":
            raise ValueError(f"the writer for '{self.path}' is already {self._state}")

    def _remove_files(self) -> None:
        _remove_quietly(self._temporary)
        if self._scratch is not None:
            self._scratch.remove()


class _PeakScratch:
    """Float32 audio parked on disk (interleaved, native byte order) while the peak is tracked."""

    def __init__(self, path: Path, channels: int) -> None:
        self.path = path
        self.channels = channels
        self.peak = 0.0
        self._handle: IO[bytes] | None = open(path, "xb")

    def append(self, block: np.ndarray) -> None:
        self.peak = max(self.peak, float(np.max(np.abs(block))))
        assert self._handle is not None
        np.ascontiguousarray(block.T).tofile(self._handle)

    def blocks(self) -> Iterator[np.ndarray]:
        assert self._handle is not None
        self._handle.close()
        self._handle = None
        with open(self.path, "rb") as handle:
            while True:
                data = np.fromfile(handle, dtype=np.float32, count=_READ_BACK_FRAMES * self.channels)
                if data.size == 0:
                    return
                yield data.reshape(-1, self.channels).T

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        _remove_quietly(self.path)


def _hidden_sibling(path: Path, kind: str) -> Path:
    """A unique hidden name in the destination folder: same file system, so os.replace is atomic."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.{kind}.tmp"


def _flush_to_disk(path: Path) -> None:
    """fsync before the rename, so a power cut cannot leave the new name pointing at empty data."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _raise_as_user_error(path: Path, error: BaseException) -> NoReturn:
    """Re-raise disk and encoder failures as the one-line user error; bugs and Ctrl-C stay as they are."""
    import soundfile

    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        raise AudioError(
            f"cannot write '{path}': {reason}; check that the folder '{path.parent}' is writable and has free space"
        ) from error
    if isinstance(error, soundfile.SoundFileError):
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AudioError(f"cannot write '{path}': {reason}; check free space, or choose another format") from error
    raise error


# --------------------------------------------------------------------------------------------
# Encoders


class _SoundfileEncoder:
    def __init__(
        self,
        path: Path,
        sample_rate: int,
        channels: int,
        file_format: str,
        subtype: str,
        compression_level: float | None = None,
        bitrate_mode: str | None = None,
    ) -> None:
        import soundfile

        self._file = soundfile.SoundFile(
            str(path), "w", samplerate=sample_rate, channels=channels, subtype=subtype, format=file_format,
            compression_level=compression_level, bitrate_mode=bitrate_mode,
        )  # fmt: skip

    def write(self, block: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(block.T))

    def finish(self) -> None:
        self._file.close()

    def discard(self) -> None:
        self._file.close()


class _FfmpegMp3Encoder:
    """libmp3lame through an ffmpeg subprocess, for a libsndfile built without MPEG support."""

    def __init__(self, path: Path, sample_rate: int, channels: int, bitrate_kbps: int, ffmpeg: str) -> None:
        self._path = path
        self._errors = tempfile.TemporaryFile()
        command = [
            ffmpeg, "-nostdin", "-v", "error", "-y",
            "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels), "-i", "pipe:0",
            "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k", "-f", "mp3", str(path),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._errors)

    def write(self, block: np.ndarray) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(np.ascontiguousarray(block.T, dtype="<f4").tobytes())
        except BrokenPipeError:
            self._process.wait()
            raise self._failure() from None

    def finish(self) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        if self._process.wait() != 0:
            raise self._failure()
        self._errors.close()

    def discard(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdin is not None and not self._process.stdin.closed:
            try:
                self._process.stdin.close()
            except BrokenPipeError:
                pass
        self._errors.close()

    def _failure(self) -> AudioError:
        self._errors.seek(0)
        message = self._errors.read().decode("utf-8", errors="replace").strip()
        reason = message.splitlines()[-1] if message else f"exit status {self._process.returncode}"
        return AudioError(f"cannot write '{self._path}': ffmpeg's mp3 encoder failed ({reason}); try --format flac")


# --------------------------------------------------------------------------------------------
# Exporters


class _Exporter:
    """Shared argument checks; subclasses say how to encode."""

    name = ""
    extension = ""

    def open(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> StreamingStemWriter:
        path = Path(path)
        _check_layout(sample_rate, channels)
        _check_folder(path)
        open_encoder = self._encoder(path, sample_rate, channels, options)
        return StreamingStemWriter(path, channels, options, open_encoder)

    def _encoder(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> OpenEncoder:
        raise NotImplementedError


class WavExporter(_Exporter):
    """16-bit, 24-bit or 32-bit float PCM: float keeps the engine's output bit for bit."""

    name = "wav"
    extension = "wav"
    _SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}

    def _encoder(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> OpenEncoder:
        subtype = self._SUBTYPES[options.bit_depth]
        return lambda temporary: _SoundfileEncoder(temporary, sample_rate, channels, "WAV", subtype)


class FlacExporter(_Exporter):
    """Lossless 16 or 24-bit; FLAC has no float samples, so `float` is refused rather than rounded."""

    name = "flac"
    extension = "flac"
    _SUBTYPES = {"16": "PCM_16", "24": "PCM_24"}

    def _encoder(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> OpenEncoder:
        subtype = self._SUBTYPES.get(options.bit_depth)
        if subtype is None:
            raise AudioError(
                f"cannot write '{path}': flac stores 16 or 24-bit samples, not {options.bit_depth}; "
                "choose bit depth 16 or 24, or the wav format for float"
            )
        return lambda temporary: _SoundfileEncoder(temporary, sample_rate, channels, "FLAC", subtype)


class OggExporter(_Exporter):
    """Ogg Vorbis at the quality whose nominal bitrate is nearest `bitrate_kbps` (Vorbis is VBR).

    The nominal bitrates are libvorbis's for stereo 44.1 kHz; mono or lower rates come out smaller.
    `bit_depth` does not apply to a lossy codec and is ignored.
    """

    name = "ogg"
    extension = "ogg"

    def _encoder(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> OpenEncoder:
        _check_bitrate(path, options.bitrate_kbps)
        level = vorbis_compression_level(options.bitrate_kbps)
        return lambda temporary: _SoundfileEncoder(
            temporary, sample_rate, channels, "OGG", "VORBIS", compression_level=level
        )


class Mp3Exporter(_Exporter):
    """Constant-bitrate mp3 (mono or stereo, 8 to 48 kHz, as MPEG audio allows).

    Bitrates outside what the sample rate's MPEG version offers are clamped to its nearest one.
    `bit_depth` does not apply to a lossy codec and is ignored. `prefer_ffmpeg` exists so the
    ffmpeg path, used where libsndfile lacks MPEG support, can be tested on any machine.
    """

    name = "mp3"
    extension = "mp3"

    def __init__(self, prefer_ffmpeg: bool = False) -> None:
        self._prefer_ffmpeg = prefer_ffmpeg

    def _encoder(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> OpenEncoder:
        _check_bitrate(path, options.bitrate_kbps)
        if channels > 2:
            raise AudioError(f"cannot write '{path}': mp3 holds 1 or 2 channels, not {channels}; choose flac or wav")
        if sample_rate not in _MP3_RATES:
            rates = ", ".join(str(rate) for rate in _MP3_RATES)
            raise AudioError(
                f"cannot write '{path}': mp3 does not support {sample_rate} Hz (only {rates}); choose flac or wav"
            )
        if not self._prefer_ffmpeg and soundfile_writes_mp3():
            level = mp3_compression_level(options.bitrate_kbps, sample_rate)
            return lambda temporary: _SoundfileEncoder(
                temporary, sample_rate, channels, "MP3", "MPEG_LAYER_III",
                compression_level=level, bitrate_mode="CONSTANT",
            )  # fmt: skip
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise AudioError(
                f"cannot write '{path}': this libsndfile cannot encode mp3 and ffmpeg is not installed; "
                "install ffmpeg (e.g. apt-get install ffmpeg) or choose flac, ogg or wav"
            )
        return lambda temporary: _FfmpegMp3Encoder(temporary, sample_rate, channels, options.bitrate_kbps, ffmpeg)


def soundfile_writes_mp3() -> bool:
    """libsndfile encodes mp3 from 1.1.0 on, when built with LAME (soundfile's wheels are)."""
    import soundfile

    return "MPEG_LAYER_III" in soundfile.available_subtypes("MP3")


def mp3_compression_level(bitrate_kbps: int, sample_rate: int) -> float:
    """The libsndfile compression level that makes its LAME encoder use `bitrate_kbps` (clamped)."""
    low, high = next(kbps for lowest, kbps in _MP3_BITRATE_RANGES if sample_rate >= lowest)
    # libsndfile truncates the bitrate it computes; a hair towards the high end keeps 192 at 192.
    return float(np.clip((high - bitrate_kbps - 0.5) / (high - low), 0.0, 1.0))


def vorbis_compression_level(bitrate_kbps: int) -> float:
    """libsndfile's Vorbis quality is 1 - compression level, for qualities 0..10 over 10."""
    quality = float(np.interp(bitrate_kbps, _VORBIS_QUALITY_KBPS, np.arange(len(_VORBIS_QUALITY_KBPS))))
    return float(np.clip(1.0 - quality / 10.0, 0.0, 1.0))


def _check_layout(sample_rate: int, channels: int) -> None:
    """A zero rate or channel count is a bug in the caller, not something the user typed."""
    for label, value in (("sample_rate", sample_rate), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")


def _check_folder(path: Path) -> None:
    folder = path.parent
    if not folder.exists():
        raise AudioError(f"cannot write '{path}': the folder '{folder}' does not exist; create it first")
    if not folder.is_dir():
        raise AudioError(f"cannot write '{path}': '{folder}' is not a folder; choose another output folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AudioError(f"cannot write '{path}': the folder '{folder}' is not writable; check its permissions")


def _check_bitrate(path: Path, bitrate_kbps: int) -> None:
    if isinstance(bitrate_kbps, bool) or not isinstance(bitrate_kbps, (int, np.integer)) or bitrate_kbps <= 0:
        raise AudioError(f"cannot write '{path}': bitrate must be a positive number of kbps, got {bitrate_kbps!r}")


EXPORTERS: tuple[_Exporter, ...] = (WavExporter(), FlacExporter(), OggExporter(), Mp3Exporter())
"""The built-in stem writers, in the order `unmix plugins` shows them."""
