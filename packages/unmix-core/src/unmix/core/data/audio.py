"""Audio in and out, resampling, and the STFT every model and the data pipeline share.

Everything here works on float32 arrays shaped (channels, frames), the layout the cache, the
data pipeline and the models use, so no caller ever has to guess which axis is time. Only numpy
is imported at module level: soundfile and soxr load on first use so that commands which never
touch audio (`unmix --help`, configuration checks) start fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import numpy as np

from unmix.core.data import ffmpeg
from unmix.core.errors import AudioError
from unmix.core.files import atomic_path

__all__ = [
    "Audio",
    "check_finite",
    "istft",
    "load_audio",
    "resample",
    "save_audio",
    "stft",
]

_CONVERT_HINT = "convert it to wav/flac/mp3"
_INSTALL_FFMPEG = "install ffmpeg, e.g. apt-get install ffmpeg"
# Container formats save_audio writes; soundfile would guess the same, but an explicit table lets a
# typo like '.wvav' fail with a message instead of an obscure libsndfile error.
_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def _as_samples(value: object) -> np.ndarray:
    """Accept what callers naturally have (a mono 1-D array, float64) without silent surprises later."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise ValueError(f"audio samples must be shaped (channels, frames), got shape {array.shape}")
    return array


@attrs.frozen(eq=False)
class Audio:
    """Samples together with their rate, because a bare array loses the one fact needed to play it.

    Equality is identity: comparing arrays element-wise would make `==` ambiguous.
    """

    samples: np.ndarray = attrs.field(converter=_as_samples)
    sample_rate: int = attrs.field(converter=int)

    def __attrs_post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


# --------------------------------------------------------------------------------------------
# Loading


def load_audio(
    path: str | os.PathLike[str], sample_rate: int | None = None, channels: int | None = None
) -> Audio:
    """Decode any file soundfile or ffmpeg understands into float32 (channels, frames).

    soundfile is tried first because it is in-process and fast for wav/flac/ogg/mp3; ffmpeg is
    the fallback for everything else (m4a, mp4, opus in containers, ...). Both paths decode at the
    file's native rate and layout and then share the same channel conversion and soxr resampler,
    so a song gives the same samples whichever decoder read it.

    `sample_rate` None keeps the native rate. `channels` None keeps the native layout; otherwise:
    1 is the mean of all channels; n from mono repeats the one channel; n fewer than the file has
    keeps the first n (for 5.1 and other WAV/ffmpeg layouts the first two are front left/right,
    so a request for stereo drops centre, LFE and surrounds rather than mixing them in); more
    channels than the file has (other than from mono) is an error.
    """
    if sample_rate is not None and (not _is_int(sample_rate) or sample_rate <= 0):
        raise ValueError(f"sample_rate must be a positive integer or None, got {sample_rate!r}")
    if channels is not None and (not _is_int(channels) or channels <= 0):
        raise ValueError(f"channels must be a positive integer or None, got {channels!r}")

    path = Path(path)
    name = str(path)
    prefix = f"cannot read audio from '{name}'"
    if not path.exists():
        raise AudioError(f"{prefix}: the file does not exist; check the path")
    if not path.is_file():
        raise AudioError(f"{prefix}: it is not a file; give the path of an audio file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as error:
        raise AudioError(f"{prefix}: {error.strerror or error}; check the file's permissions") from None
    if size == 0:
        raise AudioError(f"{prefix}: the file is empty (0 bytes); replace it with a complete audio file")

    samples, native_rate, soundfile_problem = _read_with_soundfile(path)
    if samples is None or samples.shape[1] == 0:
        ffmpeg_samples, ffmpeg_rate = _read_with_ffmpeg(path, prefix, soundfile_problem)
        if ffmpeg_samples is not None:
            samples, native_rate = ffmpeg_samples, ffmpeg_rate
    if samples is None or samples.shape[1] == 0:
        raise AudioError(
            f"{prefix}: it contains no audio samples (empty, truncated or corrupt); "
            "replace it with a complete audio file"
        )

    samples = _convert_channels(samples, channels, prefix)
    if sample_rate is not None and sample_rate != native_rate:
        samples = resample(samples, native_rate, sample_rate)
        native_rate = sample_rate
    return Audio(samples=samples, sample_rate=native_rate)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _read_with_soundfile(path: Path) -> tuple[np.ndarray | None, int, str | None]:
    """Return (samples, rate, None) or (None, 0, why) so the caller can quote soundfile's reason."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError, OSError, soundfile.SoundFileError) as error:
        return None, 0, ffmpeg.error_line(str(error), path) or type(error).__name__
    return np.ascontiguousarray(data.T), int(rate), None


def _read_with_ffmpeg(
    path: Path, prefix: str, soundfile_problem: str | None
) -> tuple[np.ndarray | None, int]:
    """Decode with ffmpeg at the native rate and layout, quoting soundfile's complaint if ffmpeg fails too."""
    soundfile_part = f"soundfile: {soundfile_problem}" if soundfile_problem else "soundfile: no samples"
    if not ffmpeg.installed("ffmpeg"):
        if soundfile_problem is None:
            # soundfile read the file but found nothing in it; ffmpeg would not do better.
            return None, 0
        raise AudioError(
            f"{prefix}: soundfile cannot decode it ({soundfile_problem}) and ffmpeg is not installed; "
            f"{_INSTALL_FFMPEG}, or {_CONVERT_HINT}"
        )
    try:
        return ffmpeg.decode_file(path)
    except OSError as error:
        raise AudioError(f"{prefix}: cannot run ffmpeg ({error}); {_INSTALL_FFMPEG}") from None
    except ffmpeg.FfmpegError as error:
        reason = ffmpeg.error_line(error.stderr, path) or f"exit status {error.returncode}"
        if error.missing_stream:
            raise AudioError(
                f"{prefix}: it has no audio stream ({soundfile_part}; ffmpeg: {reason}); "
                "give a file with sound in it"
            ) from None
        raise AudioError(
            f"{prefix}: not an audio file, or a truncated or corrupt one "
            f"({soundfile_part}; ffmpeg: {reason}); replace it or {_CONVERT_HINT}"
        ) from None


def _convert_channels(samples: np.ndarray, channels: int | None, prefix: str) -> np.ndarray:
    have = samples.shape[0]
    if channels is None or channels == have:
        return samples
    if channels == 1:
        return samples.mean(axis=0, keepdims=True, dtype=np.float32)
    if have == 1:
        return np.repeat(samples, channels, axis=0)
    if channels < have:
        return np.ascontiguousarray(samples[:channels])
    raise AudioError(
        f"{prefix}: it has {have} channels and {channels} were asked for; ask for {have} or fewer"
    )


def check_finite(samples: np.ndarray, where: str, first_frame: int = 0) -> None:
    """Refuse NaN or infinite samples where decoded audio enters prediction, evaluation or generation.

    A non-finite sample spreads through every STFT frame it touches, so without this check the
    failure surfaces far away: as a traceback while writing an output file, or as a metric that
    seems to blame the model. `where` names the input (usually its path) and `first_frame` is the
    absolute position of samples[:, 0] in that input, so a streamed segment still reports where
    the bad sample sits in the file. Shape is (channels, frames), or (frames,) for one channel.
    """
    array = np.atleast_2d(np.asarray(samples))
    finite = np.isfinite(array)
    if finite.all():
        return
    channel, frame = (int(index) for index in np.argwhere(~finite)[0])
    value = array[channel, frame]
    kind = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
    raise AudioError(
        f"{where}: sample {first_frame + frame} of channel {channel} is {kind}: the file holds "
        "non-finite audio that cannot be separated or scored; repair or remove the file"
    )


# --------------------------------------------------------------------------------------------
# Resampling and saving


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Change the sample rate with soxr, which is band-limited and fast enough for whole songs.

    Accepts (channels, frames) or a 1-D array and keeps that layout; returns float32.
    """
    import soxr

    for label, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
        if not _is_int(rate) or rate <= 0:
            raise ValueError(f"{label} must be a positive integer, got {rate!r}")
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim not in (1, 2):
        raise ValueError(f"samples must be shaped (channels, frames) or (frames,), got {array.shape}")
    if from_rate == to_rate:
        return array.copy() if array is samples else array
    if array.shape[-1] == 0:
        return np.zeros(array.shape[:-1] + (0,), dtype=np.float32)
    if array.ndim == 1:
        return np.asarray(soxr.resample(array, from_rate, to_rate, quality="HQ"), dtype=np.float32)
    # soxr wants (frames, channels).
    out = soxr.resample(np.ascontiguousarray(array.T), from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


def save_audio(path: str | os.PathLike[str], audio: Audio, subtype: str | None = None) -> None:
    """Write audio so that the file is either complete or absent, never half-written.

    A killed `unmix predict` or `unmix generate` must not leave a truncated file that a re-run
    would take as done, so the data goes to a hidden temporary name in the same folder (same file
    system, hence an atomic `os.replace`) and is flushed to disk first. The format follows the
    extension (.wav, .flac, .ogg); `subtype` None uses soundfile's default for it (16-bit PCM for
    wav and flac, Vorbis for ogg); pass e.g. 'FLOAT' to keep float32 exactly.
    """
    import soundfile

    path = Path(path)
    prefix = f"cannot write audio to '{path}'"
    file_format = _WRITE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise AudioError(f"{prefix}: unsupported extension '{path.suffix}'; use .wav, .flac or .ogg")
    folder = path.parent
    if not folder.is_dir():
        raise AudioError(f"{prefix}: the folder '{folder}' does not exist; create it first")
    if subtype is not None and not soundfile.check_format(file_format, subtype):
        raise AudioError(
            f"{prefix}: subtype '{subtype}' is not valid for {file_format}; "
            f"use one of {sorted(soundfile.available_subtypes(file_format))}"
        )
    if audio.frames == 0:
        raise AudioError(f"{prefix}: the audio has no samples; nothing to write")

    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            soundfile.write(handle, audio.samples.T, audio.sample_rate, subtype=subtype, format=file_format)
    except OSError as error:
        reason = error.strerror or error
        raise AudioError(f"{prefix}: {reason}; check the folder's permissions and free space") from None
    except (RuntimeError, ValueError, TypeError, soundfile.SoundFileError) as error:
        raise AudioError(f"{prefix}: {ffmpeg.error_line(str(error))}; try .wav or another subtype") from None


# --------------------------------------------------------------------------------------------
# STFT


def _check_lengths(fft_length: int, hop_length: int | None) -> int:
    if not _is_int(fft_length) or fft_length < 16 or fft_length % 2:
        raise ValueError(f"fft_length must be an even integer >= 16, got {fft_length!r}")
    if hop_length is None:
        return fft_length // 4
    if not _is_int(hop_length) or not 0 < hop_length <= fft_length:
        raise ValueError(f"hop_length must be an integer in (0, fft_length={fft_length}], got {hop_length!r}")
    return int(hop_length)


def hann_window(fft_length: int) -> np.ndarray:
    """Periodic Hann (not symmetric), as torch.stft and librosa use, so spectrograms match theirs."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(fft_length) / fft_length)).astype(np.float32)


# Frames transformed per block: bounds the temporary windowed copy (1 MiB of float32) whatever the
# song length, and keeps the working set small enough to stay in cache.
_BLOCK_VALUES = 256 * 1024


def stft(samples: np.ndarray, fft_length: int = 1536, hop_length: int | None = None) -> np.ndarray:
    """Centred short-time Fourier transform with a periodic Hann window, as the models see audio.

    The signal is zero padded by fft_length // 2 on both sides (librosa >= 0.10's default
    pad_mode='constant', not the older 'reflect'), so frame t is centred on sample t * hop and
    there are 1 + samples // hop of them. Input (channels, frames) gives complex64
    (channels, fft_length // 2 + 1, frames); a 1-D input gives (bins, frames).
    """
    hop = _check_lengths(fft_length, hop_length)
    signal = np.asarray(samples, dtype=np.float32)
    if signal.ndim not in (1, 2):
        raise ValueError(f"samples must be shaped (channels, frames) or (frames,), got {signal.shape}")
    squeeze = signal.ndim == 1
    signal = np.atleast_2d(signal)
    channels, length = signal.shape
    half = fft_length // 2
    padded = np.pad(signal, ((0, 0), (half, half)))
    count = 1 + length // hop
    bins = half + 1
    # (channels, count, fft_length) view, no copy.
    frames = np.lib.stride_tricks.sliding_window_view(padded, fft_length, axis=-1)[:, ::hop]
    window = hann_window(fft_length)
    spectrogram = np.empty((channels, bins, count), dtype=np.complex64)
    block = max(1, _BLOCK_VALUES // (fft_length * channels))
    for start in range(0, count, block):
        stop = min(count, start + block)
        windowed = frames[:, start:stop] * window
        spectrum = np.fft.rfft(windowed, axis=-1)
        spectrogram[:, :, start:stop] = spectrum.transpose(0, 2, 1)
    return spectrogram[0] if squeeze else spectrogram


def istft(spectrogram: np.ndarray, hop_length: int | None = None, length: int | None = None) -> np.ndarray:
    """Invert `stft` by windowed overlap-add divided by the summed squared window.

    Dividing by the window-square sum (not assuming it is constant) makes the inverse exact for any
    hop < fft_length, including the edges where fewer frames overlap. fft_length is 2 * (bins - 1).
    Give `length` (the original number of samples) to get exactly that many back; otherwise the
    result has (frames - 1) * hop samples. (channels, bins, frames) gives float32 (channels, samples);
    (bins, frames) gives (samples,).
    """
    spec = np.asarray(spectrogram)
    if spec.ndim not in (2, 3):
        raise ValueError(
            f"spectrogram must be shaped (channels, bins, frames) or (bins, frames), got {spec.shape}"
        )
    squeeze = spec.ndim == 2
    spec = spec[np.newaxis] if squeeze else spec
    channels, bins, count = spec.shape
    fft_length = 2 * (bins - 1)
    hop = _check_lengths(fft_length, hop_length)
    if length is not None and (not _is_int(length) or length < 0):
        raise ValueError(f"length must be a non-negative integer or None, got {length!r}")
    half = fft_length // 2
    window = hann_window(fft_length)

    # Overlap-add without a loop over frames: pad each frame to a whole number of hops, split it
    # into `pieces` hop-long chunks, and add chunk j of every frame into the output shifted by j
    # hops; that is `pieces` vectorised additions whatever the number of frames.
    pieces = -(-fft_length // hop)
    span = pieces * hop
    output = np.zeros((channels, count + pieces - 1, hop), dtype=np.float32)
    norm = np.zeros((count + pieces - 1, hop), dtype=np.float32)
    window_chunks = np.zeros(span, dtype=np.float32)
    window_chunks[:fft_length] = window * window
    window_chunks = window_chunks.reshape(pieces, hop)
    block = max(1, _BLOCK_VALUES // (fft_length * channels))
    for start in range(0, count, block):
        stop = min(count, start + block)
        block_spec = np.ascontiguousarray(spec[:, :, start:stop].transpose(0, 2, 1))
        frames = np.fft.irfft(block_spec, n=fft_length, axis=-1).astype(np.float32, copy=False)
        if span == fft_length:
            frames *= window
            chunks = frames
        else:
            chunks = np.zeros((channels, stop - start, span), dtype=np.float32)
            chunks[..., :fft_length] = frames * window
        chunks = chunks.reshape(channels, stop - start, pieces, hop)
        for j in range(pieces):
            output[:, start + j : stop + j] += chunks[:, :, j]
    for j in range(pieces):
        norm[j : j + count] += window_chunks[j]

    wanted = (count - 1) * hop if length is None else length
    output = output.reshape(channels, -1)
    norm = norm.reshape(-1)[half : half + wanted]
    # Where no window reaches (hop == fft_length at frame edges) there is nothing to undo.
    scale = np.divide(1.0, norm, out=np.ones_like(norm), where=norm > 1e-8)
    signal = output[:, half : half + wanted]
    signal *= scale
    if signal.shape[1] < wanted:
        signal = np.pad(signal, ((0, 0), (0, wanted - signal.shape[1])))
    signal = np.ascontiguousarray(signal)
    return signal[0] if squeeze else signal
