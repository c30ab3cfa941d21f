"""Training windows: which spectrogram columns window i covers, and its STFT computed on its own.

The seed's chopper (`Chopper.chop_n_pad`) is kept exactly: window i of a song holds `size` STFT
frames centred at frame `step * i`, i.e. columns `[step*i - size//2, step*i - size//2 + size)`,
with zero columns where that range runs past either end of the song, and a song of `frames`
frames has `ceil((frames + size//2) / step)` windows (12059 frames, size 64, step 64: 189).

What changed is how a window is made. The seed computed the STFT of the whole song and sliced it;
here a window's columns are computed from only the samples they need (`window_spectrogram`), so a
training item costs the same for a 3-minute song as for a 3-hour one, and a memory-mapped song
is read a window at a time. The result equals the corresponding columns of the full-song centred
STFT (`unmix.core.data.audio.stft`): same periodic Hann window, same centring, same float32 FFT.

"frames" here always means STFT frames (spectrogram columns); "samples" means audio samples.

Waveform models (`transformation.name: "waveform"`) have no STFT: their items are chunks of
`size` samples, `step` samples apart (`chunk_count`, `chunk_indices`), the grid the separation
engine also cuts songs on.
"""

from __future__ import annotations

import attrs
import numpy as np

from unmix.core.data.audio import hann_window

__all__ = [
    "WindowSpan",
    "chunk_count",
    "chunk_indices",
    "excerpt_spectrogram",
    "read_excerpt",
    "read_excerpt_at_speed",
    "song_frame_count",
    "window_count",
    "window_first_frame",
    "window_indices",
    "window_span",
    "window_spectrogram",
]


def song_frame_count(samples: int, hop_length: int) -> int:
    """STFT frames of a song of `samples` samples: the centred STFT has one frame per hop, plus one."""
    return 1 + int(samples) // int(hop_length)


def window_count(frames: int, size: int, step: int) -> int:
    """Windows of a song of `frames` STFT frames: the seed's `ceil((frames + size//2) / step)`.

    The `+ size//2` is what lets the last windows reach past the end of the song (zero padded)
    so that its final frames are also the centre of some window.
    """
    if size < 1 or step < 1:
        raise ValueError(f"size and step must be positive, got size={size}, step={step}")
    return -(-(int(frames) + size // 2) // step)


def window_first_frame(index: int, size: int, step: int) -> int:
    """First column of window `index` (negative for the first windows: they start in the padding)."""
    return step * int(index) - size // 2


def window_indices(frames: int, size: int, step: int, limit: int = 0) -> range:
    """The windows of a song that training uses: all of them, or the contiguous middle block of `limit`.

    The middle block is the seed's `limit_items_per_song` (`[mid - limit//2, mid - limit//2 + limit)`):
    a song's middle is the part least likely to be an intro or fade-out of near silence.
    """
    return _middle_block(window_count(frames, size, step), limit)


def _middle_block(count: int, limit: int) -> range:
    if limit <= 0 or limit >= count:
        return range(count)
    start = count // 2 - limit // 2
    return range(start, start + limit)


def chunk_count(samples: int, size: int, step: int) -> int:
    """Waveform chunks of a song of `samples` samples: chunk i covers `[step*i, step*i + size)`.

    Enough chunks that the last one reaches the song's end (its samples past the end are zeros);
    a song shorter than `size` has one chunk, an empty song none.
    """
    if size < 1 or step < 1:
        raise ValueError(f"size and step must be positive, got size={size}, step={step}")
    if samples <= 0:
        return 0
    return 1 + -(-max(int(samples) - size, 0) // step)


def chunk_indices(samples: int, size: int, step: int, limit: int = 0) -> range:
    """The waveform chunks of a song that training uses: all, or the middle block of `limit` (as `window_indices`)."""
    return _middle_block(chunk_count(samples, size, step), limit)


@attrs.frozen
class WindowSpan:
    """Where a window lies in its song, in frames and in samples.

    Columns `[valid_start, valid_stop)` of the window (0-based, relative to the window) are inside
    the song; the others are zero padding. `sample_start`/`sample_stop` bound the samples those
    valid columns read (each frame reads fft_length samples centred on `frame * hop`); they may
    reach outside the song, where the samples are zeros.
    """

    first_frame: int
    frames: int
    valid_start: int
    valid_stop: int
    sample_start: int
    sample_stop: int

    @property
    def sample_count(self) -> int:
        return self.sample_stop - self.sample_start

    @property
    def is_empty(self) -> bool:
        return self.valid_stop <= self.valid_start


def window_span(first_frame: int, frames: int, song_samples: int, fft_length: int, hop_length: int) -> WindowSpan:
    """The span of the `frames` columns starting at `first_frame` of a song of `song_samples` samples."""
    song_frames = song_frame_count(song_samples, hop_length)
    first_valid = max(first_frame, 0)
    stop_valid = min(first_frame + frames, song_frames)
    if stop_valid <= first_valid:
        # Entirely outside the song: no samples needed, every column is padding.
        return WindowSpan(first_frame, frames, 0, 0, 0, 0)
    half = fft_length // 2
    return WindowSpan(
        first_frame=first_frame,
        frames=frames,
        valid_start=first_valid - first_frame,
        valid_stop=stop_valid - first_frame,
        sample_start=first_valid * hop_length - half,
        sample_stop=(stop_valid - 1) * hop_length + half,
    )


def read_excerpt(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Samples `[start, stop)` of a (channels, samples) array as a new float32 array, zeros outside it.

    Always a copy, so a memory-mapped song is read once here and its caller may modify the result
    (augmentation scales it in place) without touching the cache.
    """
    channels, length = samples.shape
    excerpt = np.zeros((channels, stop - start), dtype=np.float32)
    inside_start = max(start, 0)
    inside_stop = min(stop, length)
    if inside_stop > inside_start:
        excerpt[:, inside_start - start:inside_stop - start] = samples[:, inside_start:inside_stop]
    return excerpt


def read_excerpt_at_speed(samples: np.ndarray, start: int, count: int, speed: float) -> np.ndarray:
    """`count` samples from `start` of a (channels, samples) array played `speed` times as fast.

    Sample k is read at `start + k * speed`, between samples by linear interpolation: pitch and
    tempo move together, as on tape. Cheap enough to run per training window; what linear
    interpolation adds (a gentle low-pass, a little aliasing when faster) is far below the change
    of register it buys. Zeros outside the array, as `read_excerpt`.
    """
    if speed == 1.0 or count == 0:
        return read_excerpt(samples, start, start + count)
    positions = np.arange(count, dtype=np.float64) * speed
    source = read_excerpt(samples, start, start + int(np.ceil(positions[-1])) + 2)
    grid = np.arange(source.shape[1], dtype=np.float64)
    return np.stack([np.interp(positions, grid, channel) for channel in source]).astype(np.float32, copy=False)


_HANN_CACHE: dict[int, np.ndarray] = {}


def _hann(fft_length: int) -> np.ndarray:
    window = _HANN_CACHE.get(fft_length)
    if window is None:
        window = _HANN_CACHE.setdefault(fft_length, hann_window(fft_length))
    return window


def excerpt_spectrogram(excerpt: np.ndarray, span: WindowSpan, fft_length: int, hop_length: int) -> np.ndarray:
    """The window's complex64 (channels, bins, frames) spectrogram from the excerpt `read_excerpt` gave.

    Splitting reading from transforming lets the data pipeline change the excerpt in between
    (gain, channel swap, remixing with another song's stem) at the cost of one STFT per window.
    """
    channels = excerpt.shape[0]
    bins = fft_length // 2 + 1
    spectrogram = np.zeros((channels, bins, span.frames), dtype=np.complex64)
    if span.is_empty:
        return spectrogram
    if excerpt.shape[1] != span.sample_count:
        raise ValueError(f"excerpt has {excerpt.shape[1]} samples, the span needs {span.sample_count}")
    signal = np.asarray(excerpt, dtype=np.float32)
    # (channels, valid frames, fft_length) view; frame k starts k hops into the excerpt.
    framed = np.lib.stride_tricks.sliding_window_view(signal, fft_length, axis=-1)[:, ::hop_length]
    valid = span.valid_stop - span.valid_start
    spectrum = np.fft.rfft(framed[:, :valid] * _hann(fft_length), axis=-1)
    spectrogram[:, :, span.valid_start:span.valid_stop] = spectrum.transpose(0, 2, 1)
    return spectrogram


def window_spectrogram(
    samples: np.ndarray, first_frame: int, frames: int, fft_length: int = 1536, hop_length: int | None = None
) -> np.ndarray:
    """Columns `[first_frame, first_frame + frames)` of the song's centred STFT, zero outside the song.

    Equal to `stft(samples, fft_length, hop_length)[:, :, first_frame:first_frame + frames]` (with
    zero columns for frames before 0 or past the last), but it reads and transforms only the
    `(frames - 1) * hop + fft_length` samples the window needs. `samples` is (channels, samples).
    """
    hop = hop_length or fft_length // 4
    span = window_span(first_frame, frames, samples.shape[-1], fft_length, hop)
    excerpt = read_excerpt(samples, span.sample_start, span.sample_stop)
    return excerpt_spectrogram(excerpt, span, fft_length, hop)
