"""Stem writers: wav, flac, ogg (Vorbis) and mp3, streamed block by block and written atomically.

Why they look the way they do:

- Streaming. The prediction engine hands over one block of separated audio at a time so that
  memory does not grow with the length of a song; writers therefore encode each block as it
  comes and keep nothing else in memory.
- Whole or not at all. Audio goes to a hidden temporary file beside the destination (same file
  system, so the final `os.replace` is atomic; see `unmix.core.files`, whose names carry the
  writer's pid so that the next writer removes what a SIGKILL left) and only `close()` moves it
  into place. `abort()`, an exception inside a `with` block, a failed write or a full disk remove
  the temporary file, so a killed or failed `unmix predict` never leaves a truncated stem that
  looks finished.
- Peaks above full scale are never wrapped. Integer encoders turn 1.5 into a large negative
  number; the writers therefore apply the `peak` option first:
  * `clip` clips each block to [-1, 1] in every format that cannot hold more (16/24-bit wav and
    flac, ogg, mp3) and counts the samples it clipped (`clipped_samples`), so that prediction can
    warn that the stems no longer add up to the input there. 32-bit float wav holds samples
    beyond full scale, so it keeps them as they are: float stems always add up to the input;
  * `normalize` scales the whole file down to a peak of -0.1 dBFS, but only when its peak is
    above full scale. Quieter files are left untouched, so stems that fit keep their level.
    `close(common_peak)` takes the loudest peak of all the song's stems, so that every stem gets
    the same gain and target + rest still add up to the mix times that gain. Knowing the peak
    needs the whole file: blocks go to a float32 scratch file beside the destination while the
    peak is tracked, and close() re-reads that file block by block and encodes it, so memory
    still stays at one block.
- Formats: wav (16-bit, 24-bit or 32-bit float), flac (16 or 24-bit), ogg (Vorbis, quality from
  the bitrate), mp3 (libsndfile's LAME encoder at a constant bitrate when the installed
  libsndfile has MPEG support, otherwise ffmpeg's libmp3lame through a pipe).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Protocol

import numpy as np

from unmix.core.errors import AudioError
from unmix.core.files import AtomicFile, temporary_path, write_error
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
_NEARLY_FULL_BYTES = 1 << 20  # a write that failed with less free than this failed for want of space

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

    def __init__(self, path: Path, channels: int, options: ExportOptions, open_encoder: OpenEncoder,
                 holds_peaks: bool = False) -> None:
        self.path = Path(path)
        self.channels = channels
        self.peak = 0.0
        """The largest absolute sample written so far, before any clipping or gain."""
        self.clipped_samples = 0
        """Samples that `clip` had to bring back to full scale: where the stems stop adding up."""
        self._clips = not holds_peaks
        self._file = AtomicFile(self.path)
        self._state = "open"
        self._scratch: _PeakScratch | None = None
        try:
            if options.peak == "normalize":
                self._scratch = _PeakScratch(temporary_path(self.path.with_name(f"{self.path.name}.f32")), channels)
            self._encoder = open_encoder(self._file.temporary)
        except BaseException as error:
            self._fail(error, self._remove_files)

    def write(self, block: np.ndarray) -> None:
        self._require_open()
        block = self._checked(block)
        if block.shape[1] == 0:
            return
        self.peak = max(self.peak, float(np.max(np.abs(block))))
        try:
            if self._scratch is not None:
                self._scratch.append(block)
            else:
                self._encoder.write(self._clipped(block))
        except BaseException as error:
            self._fail(error, self.abort)

    def close(self, common_peak: float = 0.0) -> None:
        """Finish the file; with `normalize`, scale it by the gain that the louder of its own peak
        and `common_peak` (the loudest of the song's other stems) needs."""
        if self._state == "closed":
            return
        self._require_open()
        try:
            if self._scratch is not None:
                self._encode_normalized(self._scratch, max(self.peak, common_peak))
            self._encoder.finish()
            self._file.commit()
        except BaseException as error:
            self._fail(error, self.abort)
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

    def _fail(self, error: BaseException, clean_up: Callable[[], None]) -> NoReturn:
        """Raise `error` as the user sees it, judged before `clean_up` frees the disk again."""
        user_error = _as_user_error(self.path, error)
        clean_up()
        if user_error is error:
            raise error
        raise user_error from error

    def _encode_normalized(self, scratch: _PeakScratch, peak: float) -> None:
        gain = _NORMALIZED_PEAK / peak if peak > 1.0 else 1.0
        for block in scratch.blocks():
            self._encoder.write(np.clip(block * np.float32(gain), -1.0, 1.0))

    def _clipped(self, block: np.ndarray) -> np.ndarray:
        if not self._clips:
            return block
        self.clipped_samples += int(np.count_nonzero(np.abs(block) > 1.0))
        return np.clip(block, -1.0, 1.0)

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
        self._file.discard()
        if self._scratch is not None:
            self._scratch.remove()


class _PeakScratch:
    """Float32 audio parked on disk (interleaved, native byte order) until the peak is known."""

    def __init__(self, path: Path, channels: int) -> None:
        self.path = path
        self.channels = channels
        self._handle: IO[bytes] | None = open(path, "xb")

    def append(self, block: np.ndarray) -> None:
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


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _as_user_error(path: Path, error: BaseException) -> BaseException:
    """Disk and encoder failures as the one-line user error; bugs and Ctrl-C stay as they are."""
    import soundfile

    if isinstance(error, OSError):
        full = write_error(path, error)
        if full is not None:
            return AudioError(str(full))
        reason = error.strerror or str(error)
        return AudioError(
            f"cannot write '{path}': {reason}; check that the folder '{path.parent}' is writable and has free space"
        )
    if isinstance(error, soundfile.SoundFileError):
        full = _disk_full_error(path)
        if full is not None:
            return full
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return AudioError(f"cannot write '{path}': {reason}; check free space, or choose another format")
    return error


def _disk_full_error(path: Path) -> AudioError | None:
    """libsndfile reports a failed write as "System error." without the errno; the disk tells whether
    it was full or read-only (asked before the temporary file is removed and frees the space)."""
    try:
        disk = os.statvfs(path.parent)
    except OSError:
        return None
    if disk.f_flag & os.ST_RDONLY:
        cause = errno.EROFS
    elif disk.f_bavail * disk.f_frsize < _NEARLY_FULL_BYTES:
        cause = errno.ENOSPC
    else:
        return None
    full = write_error(path, OSError(cause, os.strerror(cause)))
    return AudioError(str(full)) if full is not None else None


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
        return StreamingStemWriter(path, channels, options, open_encoder, self._holds_peaks(options))

    def _encoder(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> OpenEncoder:
        raise NotImplementedError

    def _holds_peaks(self, options: ExportOptions) -> bool:
        """Whether the sample format stores values beyond full scale, so that `clip` need not clip."""
        return False


class WavExporter(_Exporter):
    """16-bit, 24-bit or 32-bit float PCM: float keeps the engine's output bit for bit."""

    name = "wav"
    extension = "wav"
    _SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}

    def _encoder(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> OpenEncoder:
        subtype = self._SUBTYPES[options.bit_depth]
        return lambda temporary: _SoundfileEncoder(temporary, sample_rate, channels, "WAV", subtype)

    def _holds_peaks(self, options: ExportOptions) -> bool:
        return options.bit_depth == "float"


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
