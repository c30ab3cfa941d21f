"""Stem writers: wav, flac, ogg (Vorbis) and mp3 (one file per stem), and npz (one NumPy archive per
song holding every stem), streamed block by block and written atomically.

Why they look the way they do:

- Streaming. The prediction engine hands over one block of separated audio at a time so that
  memory does not grow with the length of a song; writers therefore encode each block as it
  comes and keep nothing else in memory.
- Whole or not at all. Audio goes to a hidden temporary file beside the destination (same file
  system, so the final `os.replace` is atomic; see `unmix.core.files`, whose names carry the
  writer's pid so that the next writer removes what a SIGKILL left) and only `close()` moves it
  into place. `abort()`, an exception inside a `with` block, a failed write or a full disk remove
  the temporary file (and any scratch file), so a killed or failed `unmix predict` never leaves a
  truncated stem that looks finished.
- Peaks are core's business, not the writers': `unmix predict` applies `--peak` (clip, or
  normalize every stem of a song by one gain) before a block reaches a writer, so the writers
  never buffer a song to find its peak. A writer only declares `keeps_peaks`: 32-bit float wav
  and npz store samples beyond full scale, so `clip` leaves them and the stems add up to the
  input exactly. Formats that cannot hold such samples still clip whatever reaches them, because
  an integer encoder would turn 1.5 into a large negative number: wrapping is never an option.
- Formats: wav (16-bit, 24-bit or 32-bit float), flac (16 or 24-bit), ogg (Vorbis, quality from
  the bitrate), mp3 (libsndfile's LAME encoder at a constant bitrate when the installed
  libsndfile has MPEG support, otherwise ffmpeg's libmp3lame through a pipe), npz (float32, for
  analysis in Python; the stems go to scratch files and are packed into the archive on close(),
  since an archive's members are written one after another while the stems arrive side by side).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Mapping
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
    "NpzExporter",
    "NpzSongWriter",
    "OggExporter",
    "StreamingStemWriter",
    "WavExporter",
]

NPZ_SAMPLE_RATE = "sample_rate"
"""The npz archive's member that holds the sample rate, beside one member per stem."""
_COPY_BYTES = 1 << 20
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
# The writers: validation, atomic commit


class _AtomicWriter:
    """What every writer here shares: a hidden temporary file that close() moves into place, the
    open / closed / aborted states, the checks on blocks, and one-line errors for disk failures.

    Usable as a context manager: leaving the block normally closes the writer, leaving it with an
    exception aborts it. Subclasses write the temporary file in `_finish` and free what they hold
    in `_discard`.
    """

    keeps_peaks = False
    """Whether the file stores samples beyond full scale (`StemWriter.keeps_peaks`)."""

    def __init__(self, path: Path, channels: int) -> None:
        self.path = Path(path)
        self.channels = channels
        self._file = AtomicFile(self.path)
        self._state = "open"

    def close(self) -> None:
        """Finish the file and move it into place; closing twice is harmless."""
        if self._state == "closed":
            return
        self._require_open()
        try:
            self._finish()
            self._file.commit()
        except BaseException as error:
            self._fail(error, self.abort)
        self._state = "closed"

    def abort(self) -> None:
        """Idempotent, and a no-op once closed: a finished file is never taken back."""
        if self._state != "open":
            return
        self._state = "aborted"
        try:
            self._discard()
        except Exception:  # the files go anyway; a second error must not hide the first
            pass
        self._file.discard()

    def __enter__(self) -> _AtomicWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _finish(self) -> None:
        """Complete the temporary file (`self._file.temporary`)."""
        raise NotImplementedError

    def _discard(self) -> None:
        """Release open files or processes after a failure; the temporary file is removed after this."""
        raise NotImplementedError

    def _fail(self, error: BaseException, clean_up: Callable[[], None]) -> NoReturn:
        """Raise `error` as the user sees it, judged before `clean_up` frees the disk again."""
        user_error = _as_user_error(self.path, error)
        clean_up()
        if user_error is error:
            raise error
        raise user_error from error

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


class StreamingStemWriter(_AtomicWriter):
    """A `StemWriter` that encodes each block through an `_Encoder` into the hidden file as it comes."""

    def __init__(self, path: Path, channels: int, open_encoder: OpenEncoder, keeps_peaks: bool = False) -> None:
        super().__init__(path, channels)
        self.keeps_peaks = keeps_peaks
        try:
            self._encoder = open_encoder(self._file.temporary)
        except BaseException as error:
            self._fail(error, self._file.discard)

    def write(self, block: np.ndarray) -> None:
        self._require_open()
        block = self._checked(block)
        if block.shape[1] == 0:
            return
        try:
            self._encoder.write(block if self.keeps_peaks else np.clip(block, -1.0, 1.0))
        except BaseException as error:
            self._fail(error, self.abort)

    def __enter__(self) -> StreamingStemWriter:
        return self

    def _finish(self) -> None:
        self._encoder.finish()

    def _discard(self) -> None:
        self._encoder.discard()


class NpzSongWriter(_AtomicWriter):
    """A `SongWriter` for `<song>.npz`: each stem streams to its own float32 scratch file beside the
    destination, and close() packs them into the archive.

    An .npz is a zip of .npy files, written one after another, while the stems arrive side by side,
    block by block. Each array is stored in Fortran order, whose bytes are exactly the interleaved
    frames a scratch file holds, so packing is a plain copy and memory stays at one block.
    """

    keeps_peaks = True

    def __init__(self, path: Path, sample_rate: int, channels: int, stems: tuple[str, ...]) -> None:
        super().__init__(path, channels)
        self.sample_rate = sample_rate
        self.frames = 0
        self._scratches: dict[str, _ScratchFile] = {}
        try:
            for stem in stems:
                self._scratches[stem] = _ScratchFile(temporary_path(self.path.with_name(f"{self.path.name}.{stem}")))
        except BaseException as error:
            self._fail(error, self.abort)

    def write_stems(self, blocks: Mapping[str, np.ndarray]) -> None:
        self._require_open()
        if set(blocks) != set(self._scratches):
            raise ValueError(f"blocks for '{self.path}' must be of the stems {', '.join(self._scratches)}, "
                             f"got {', '.join(blocks)}")
        checked = {stem: self._checked(block) for stem, block in blocks.items()}
        lengths = {block.shape[1] for block in checked.values()}
        if len(lengths) != 1:
            raise ValueError(f"blocks for '{self.path}' must have one length for every stem, got {sorted(lengths)}")
        try:
            for stem, block in checked.items():
                self._scratches[stem].append(block)
        except BaseException as error:
            self._fail(error, self.abort)
        self.frames += lengths.pop()

    def __enter__(self) -> NpzSongWriter:
        return self

    def _finish(self) -> None:
        header = {"descr": "<f4", "fortran_order": True, "shape": (self.channels, self.frames)}
        with zipfile.ZipFile(self._file.temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for stem, scratch in self._scratches.items():
                scratch.close()
                with archive.open(f"{stem}.npy", "w", force_zip64=True) as member, open(scratch.path, "rb") as data:
                    np.lib.format.write_array_header_1_0(member, header)
                    shutil.copyfileobj(data, member, _COPY_BYTES)
                scratch.remove()
            with archive.open(f"{NPZ_SAMPLE_RATE}.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(self.sample_rate))

    def _discard(self) -> None:
        for scratch in self._scratches.values():
            scratch.remove()


class _ScratchFile:
    """Float32 audio parked on disk (interleaved frames, little-endian) until the writer packs it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] = open(path, "xb")

    def append(self, block: np.ndarray) -> None:
        np.ascontiguousarray(block.T, dtype="<f4").tofile(self._handle)

    def close(self) -> None:
        self._handle.close()

    def remove(self) -> None:
        self._handle.close()
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
    """Shared argument checks of the audio formats (one file per stem); subclasses say how to encode.

    `song`, `stem` and `stems` are not needed: `path` already carries the song's and stem's names.
    """

    name = ""
    extension = ""
    per_song = False

    def open(self, path: Path, sample_rate: int, channels: int, options: ExportOptions, *, song: str,
             stem: str | None, stems: tuple[str, ...]) -> StreamingStemWriter:
        path = Path(path)
        _check_layout(sample_rate, channels)
        _check_folder(path)
        open_encoder = self._encoder(path, sample_rate, channels, options)
        return StreamingStemWriter(path, channels, open_encoder, self._keeps_peaks(options))

    def _encoder(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> OpenEncoder:
        raise NotImplementedError

    def _keeps_peaks(self, options: ExportOptions) -> bool:
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

    def _keeps_peaks(self, options: ExportOptions) -> bool:
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


class NpzExporter:
    """One NumPy archive per song, `<song>.npz`: a float32 (channels, samples) array per stem, named by
    the stem, and `sample_rate`, for analysis in Python (`np.load("song.npz")["vocals"]`).

    float32 keeps samples beyond full scale, so `clip` leaves them (as 32-bit float wav does) and
    the stems add up to the input exactly; `bit_depth` and `bitrate_kbps` do not apply.
    """

    name = "npz"
    extension = "npz"
    per_song = True

    def open(self, path: Path, sample_rate: int, channels: int, options: ExportOptions, *, song: str,
             stem: str | None, stems: tuple[str, ...]) -> NpzSongWriter:
        path = Path(path)
        _check_layout(sample_rate, channels)
        _check_folder(path)
        if NPZ_SAMPLE_RATE in stems:
            raise AudioError(f"cannot write '{path}': a stem named '{NPZ_SAMPLE_RATE}' would hide the archive's "
                             "sample rate; train a target of another name, or choose another format")
        return NpzSongWriter(path, sample_rate, channels, stems)


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


EXPORTERS: tuple[_Exporter | NpzExporter, ...] = (
    WavExporter(), FlacExporter(), OggExporter(), Mp3Exporter(), NpzExporter()
)
"""The built-in stem writers, in the order `unmix plugins` shows them."""
