"""The overlap-add engine: a mix spectrogram in, the target's spectrogram out.

Windows of `size` frames centred at `step * i` (the training windows) go through the model in
batches; each estimate is weighted by the transform's synthesis weights and added into place, and
every frame is divided by the sum of the weights it received, so frames at the song's edges (where
fewer windows overlap) come out exact too. The seed instead called the model once per window and
dropped the tail of its last window (docs/original-system.md §6.2 and §9.6).

A segment of a longer song can be separated on its own with the same result as the whole song,
as long as the segment starts on the window grid and its margins cover the windows' reach:
`SegmentPlan` computes both, and `separate_segment` leaves out windows and frames that do not
exist in the whole song. That is what lets `unmix.core.separation.prediction` stream songs of any length.

A waveform model (`Transform.kind == "waveform"`) takes the same two entry points, `SegmentPlan`
and `separate_segment`, with samples for frames: chunks of `size` samples `step` apart on a grid
from the song's first sample, each estimate weighted by the transform's cross-fade
(`unmix.core.data.transforms.crossfade_weights`) and every sample divided by its weights' sum
(`separate_waveform`). A chunk past the song's end reads zeros there, as in training.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np

from unmix.core.data.audio import hann_window, istft, stft
from unmix.core.data.transforms import Transform
from unmix.core.data.windows import chunk_count, song_frame_count, window_count
from unmix.core.errors import UnmixError

Predict = Callable[[np.ndarray], np.ndarray]


@attrs.frozen
class SeparationSettings:
    fft_length: int
    hop_length: int
    model_channels: int
    batch_size: int


def separate_spectrogram(mix: np.ndarray, transform: Transform, predict: Predict, settings: SeparationSettings,
                         first_frame: int = 0, total_frames: int | None = None) -> np.ndarray:
    """The target's complex spectrogram (channels, bins, frames) for a mix spectrogram of that shape.

    `first_frame` is the global index of `mix`'s first column and `total_frames` the whole song's
    frame count (None: the song goes on past this segment); both matter only for segments.
    """
    channels, bins, frames = mix.shape
    _check_channels(channels, settings.model_channels)
    size, step = transform.size, transform.step
    song_frames = total_frames if total_frames is not None else first_frame + frames + size
    window_offset = first_frame // step
    if first_frame % step:
        raise ValueError(f"a segment must start on the window grid (frame {first_frame}, step {step})")
    last_window = window_count(song_frames, size, step)
    local_windows = [i for i in range(window_count(frames, size, step)) if 0 <= i + window_offset < last_window]

    padded = np.zeros((channels, bins, frames + 2 * size), dtype=np.complex64)
    padded[:, :, size:size + frames] = mix
    weights = transform.synthesis_weights()
    columns = transform.output_columns
    estimate = np.zeros((channels, bins, frames + 2 * size), dtype=np.complex64)
    weight_sum = np.zeros(frames + 2 * size, dtype=np.float32)
    for start in range(0, len(local_windows), settings.batch_size):
        batch = local_windows[start:start + settings.batch_size]
        first_columns = [step * i - size // 2 + size for i in batch]
        mix_windows = np.stack([padded[:, :, c:c + size] for c in first_columns])
        model_windows = _model_items(mix_windows, settings.model_channels)
        prediction = predict(transform.prepare_input(model_windows))
        target_windows = transform.untransform(model_windows, prediction)
        target_windows = _collapse(target_windows, len(batch), channels, settings.model_channels)
        for window, first_column in zip(target_windows, first_columns, strict=True):
            where = slice(first_column + columns.start, first_column + columns.stop)
            estimate[:, :, where] += window * weights
            weight_sum[where] += weights
    covered = weight_sum > 0
    estimate[:, :, covered] /= weight_sum[covered]
    return estimate[:, :, size:size + frames]


def _check_channels(channels: int, model_channels: int) -> None:
    if model_channels == 1 or model_channels == channels or (model_channels == 2 and channels == 1):
        return
    raise UnmixError(f"the model separates {model_channels}-channel audio but the song has {channels} channels; "
                     "convert the song to mono or stereo")


def _model_items(mix_windows: np.ndarray, model_channels: int) -> np.ndarray:
    """(batch, song channels, ...) windows or chunks as the model takes them: a mono model separates
    each channel of a stereo song as its own item; a stereo model gets a mono song on both sides."""
    batch, channels = mix_windows.shape[:2]
    if model_channels == 1:
        return mix_windows.reshape(batch * channels, 1, *mix_windows.shape[2:])
    if channels == model_channels:
        return mix_windows
    return np.repeat(mix_windows, model_channels, axis=1)


def _collapse(target_windows: np.ndarray, batch: int, channels: int, model_channels: int) -> np.ndarray:
    """Back to (batch, song channels, ...): regroup mono items, or average a stereo estimate."""
    if model_channels == 1:
        return target_windows.reshape(batch, channels, *target_windows.shape[2:])
    if channels == model_channels:
        return target_windows
    return target_windows.mean(axis=1, keepdims=True)


@attrs.frozen
class SegmentPlan:
    """How a long song is cut into segments that separate exactly like the whole song.

    Each segment keeps `core` samples and reads `margin` samples of context on both sides. Both
    are whole multiples of `step * hop` samples, so every segment starts on the window grid; for
    a waveform model, of `step` samples, with a margin of at least `size`: every chunk that
    touches the core then lies inside the segment.
    """

    core: int
    margin: int

    @classmethod
    def for_transform(cls, transform: Transform, settings: SeparationSettings, core_samples: int) -> SegmentPlan:
        if transform.kind == "waveform":
            grid, reach = transform.step, transform.size
        else:
            grid = transform.step * settings.hop_length
            reach = (transform.size + 2) * settings.hop_length + settings.fft_length
        margin = -(-reach // grid) * grid
        core = max(grid, -(-core_samples // grid) * grid)
        return cls(core=core, margin=margin)


def separate_segment(segment: np.ndarray, segment_start: int, total_samples: int | None, transform: Transform,
                     predict: Predict, settings: SeparationSettings) -> np.ndarray:
    """The target's samples for `segment` (channels, samples), which starts at global sample `segment_start`.

    Samples outside the song must be zeros in `segment`; `total_samples` is the song's length, or
    None while it is not known yet (the segment ends before the song does).
    """
    if transform.kind == "waveform":
        return separate_waveform(segment, segment_start, total_samples, transform, predict, settings)
    hop = settings.hop_length
    spectrogram = stft(segment, settings.fft_length, hop)
    first_frame = segment_start // hop
    total_frames = song_frame_count(total_samples, hop) if total_samples is not None else None
    frame_indices = first_frame + np.arange(spectrogram.shape[-1])
    outside = frame_indices < 0
    if total_frames is not None:
        outside |= frame_indices >= total_frames
    spectrogram[:, :, outside] = 0
    target = separate_spectrogram(spectrogram, transform, predict, settings, first_frame, total_frames)
    samples = istft(target, hop, length=segment.shape[-1])
    if outside.any():
        samples *= _existing_frames_correction(outside, settings.fft_length, hop, segment.shape[-1])
    return samples


def separate_waveform(segment: np.ndarray, segment_start: int, total_samples: int | None, transform: Transform,
                      predict: Predict, settings: SeparationSettings) -> np.ndarray:
    """A waveform model's target samples for `segment`, as `separate_segment` describes.

    Chunk i covers the song's samples `[step*i, step*i + size)`. Only chunks of the whole song
    (`chunk_count`) that lie inside the segment are used, or that run past the song's end, where
    every sample is zero: so wherever the segment holds every chunk that covers a sample (more
    than `size` samples from its cut ends), the sample equals the whole song's, chunk for chunk
    and sum for sum.
    """
    channels, length = segment.shape
    _check_channels(channels, settings.model_channels)
    size, step = transform.size, transform.step
    if segment_start % step:
        raise ValueError(f"a segment must start on the chunk grid (sample {segment_start}, step {step})")
    segment_stop = segment_start + length
    song_ends_here = total_samples is not None and segment_stop >= total_samples
    chunks = chunk_count(total_samples, size, step) if total_samples is not None else None
    offsets = []
    index = max(0, segment_start // step)
    while (chunks is None or index < chunks) and index * step < segment_stop:
        if index * step + size > segment_stop and not song_ends_here:
            break
        offsets.append(index * step - segment_start)
        index += 1

    padded = np.zeros((channels, length + size), dtype=np.float32)
    padded[:, :length] = segment
    weights = transform.synthesis_weights()
    estimate = np.zeros_like(padded)
    weight_sum = np.zeros(length + size, dtype=np.float32)
    for start in range(0, len(offsets), settings.batch_size):
        batch = offsets[start:start + settings.batch_size]
        model_items = _model_items(np.stack([padded[:, offset:offset + size] for offset in batch]),
                                   settings.model_channels)
        prediction = predict(transform.prepare_input(model_items))
        target_chunks = _collapse(transform.untransform(model_items, prediction), len(batch), channels,
                                  settings.model_channels)
        for chunk, offset in zip(target_chunks, batch, strict=True):
            estimate[:, offset:offset + size] += chunk * weights
            weight_sum[offset:offset + size] += weights
    covered = weight_sum > 0
    estimate[:, covered] /= weight_sum[covered]
    return estimate[:, :length]


def _existing_frames_correction(outside: np.ndarray, fft_length: int, hop: int, length: int) -> np.ndarray:
    """Rescale samples near the song's ends as if the frames outside the song did not exist.

    The inverse STFT divides by the summed squared window of every frame it was given; the whole
    song has no frames before its start or after its end, so there the sum must leave them out.
    """
    window_squared = hann_window(fft_length) ** 2
    every = np.zeros(length + fft_length, dtype=np.float64)
    missing = np.zeros_like(every)
    for frame in range(outside.size):
        start = frame * hop
        if start >= every.size:
            break
        piece = window_squared[: every.size - start]
        every[start:start + piece.size] += piece
        if outside[frame]:
            missing[start:start + piece.size] += piece
    every = every[fft_length // 2: fft_length // 2 + length]
    existing = every - missing[fft_length // 2: fft_length // 2 + length]
    correction = np.zeros(length, dtype=np.float32)
    kept = existing > 1e-8 * every.max()
    correction[kept] = every[kept] / existing[kept]
    return correction
