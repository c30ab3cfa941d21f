"""The seed's window chopper, and window spectrograms computed from just the samples they need."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unmix.core.data.audio import stft
from unmix.core.data.windows import (
    excerpt_spectrogram,
    read_excerpt,
    song_frame_count,
    window_count,
    window_first_frame,
    window_indices,
    window_span,
    window_spectrogram,
)

RATE = 22050


def noise(channels: int, samples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, samples)).astype(np.float32)


def reference_columns(spectrogram: np.ndarray, first_frame: int, frames: int) -> np.ndarray:
    """The seed's chop_n_pad: columns [first, first + frames) of a full spectrogram, zero padded."""
    channels, bins, total = spectrogram.shape
    window = np.zeros((channels, bins, frames), dtype=spectrogram.dtype)
    low, high = max(first_frame, 0), min(first_frame + frames, total)
    if high > low:
        window[:, :, low - first_frame:high - first_frame] = spectrogram[:, :, low:high]
    return window


@pytest.mark.parametrize(
    ("frames", "size", "step"),
    [(12059, 64, 64), (12059, 64, 32), (100, 25, 1), (1, 64, 64), (64, 64, 64), (1000, 63, 17)],
)
def test_window_count_follows_the_seed_formula(frames: int, size: int, step: int) -> None:
    assert window_count(frames, size, step) == math.ceil((frames + size // 2) / step)


def test_a_three_and_a_half_minute_song_has_189_windows() -> None:
    frames = song_frame_count(int(3.5 * 60 * RATE), 384)
    assert frames == 12059
    assert window_count(frames, 64, 64) == 189


def test_windows_are_centred_at_step_times_index() -> None:
    size, step = 64, 48
    for index in range(5):
        first = window_first_frame(index, size, step)
        columns = np.arange(first, first + size)
        assert columns[size // 2] == step * index
        assert first == step * index - size // 2
    # Odd sizes keep the seed's floor: the centre is column size // 2.
    assert window_first_frame(3, 25, 1) == 3 - 12


def test_every_frame_is_the_centre_region_of_some_window() -> None:
    """The last windows reach past the end, so the song's final frames are covered too."""
    frames, size, step = 500, 64, 64
    count = window_count(frames, size, step)
    covered = np.zeros(frames, dtype=bool)
    for index in range(count):
        centre = step * index
        low, high = max(centre - step // 2, 0), min(centre - step // 2 + step, frames)
        covered[low:high] = True
    assert covered.all()


def test_limit_items_per_song_keeps_the_contiguous_middle_block() -> None:
    count = window_count(12059, 64, 64)
    assert window_indices(12059, 64, 64) == range(count)
    middle = window_indices(12059, 64, 64, limit=10)
    assert len(middle) == 10
    assert middle == range(count // 2 - 5, count // 2 + 5)
    assert window_indices(12059, 64, 64, limit=10_000) == range(count)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(("fft_length", "hop_length"), [(1536, None), (1024, 256), (512, 200)])
def test_window_spectrogram_equals_the_full_stft_columns(channels: int, fft_length: int, hop_length: int | None):
    samples = noise(channels, 40_000 + 123)
    full = stft(samples, fft_length, hop_length)
    total = full.shape[-1]
    size = 64
    firsts = [-size, -size // 2, -5, 0, 7, total // 2, total - size, total - 10, total - 1, total + 3]
    for first in firsts:
        window = window_spectrogram(samples, first, size, fft_length, hop_length)
        assert window.dtype == np.complex64
        assert window.shape == (channels, fft_length // 2 + 1, size)
        np.testing.assert_array_equal(window, reference_columns(full, first, size))


def test_window_spectrogram_of_a_song_shorter_than_one_fft() -> None:
    samples = noise(1, 500)
    full = stft(samples, 1536)
    window = window_spectrogram(samples, -32, 64, 1536)
    np.testing.assert_array_equal(window, reference_columns(full, -32, 64))


def test_columns_outside_the_song_are_zero() -> None:
    samples = noise(2, 30_000) + 1.0  # no exactly-silent frame anywhere in the song
    total = song_frame_count(30_000, 384)
    window = window_spectrogram(samples, -10, 64, 1536)
    assert not window[:, :, :10].any()
    assert np.abs(window[:, :, 10:]).min(axis=1).all()
    window = window_spectrogram(samples, total - 4, 64, 1536)
    assert np.abs(window[:, :, :4]).min(axis=1).all()
    assert not window[:, :, 4:].any()


def test_a_window_reads_only_the_samples_it_needs() -> None:
    span = window_span(first_frame=100, frames=64, song_samples=10 * RATE, fft_length=1536, hop_length=384)
    assert (span.valid_start, span.valid_stop) == (0, 64)
    assert span.sample_start == 100 * 384 - 768
    assert span.sample_count == 63 * 384 + 1536
    edge = window_span(first_frame=-32, frames=64, song_samples=10 * RATE, fft_length=1536, hop_length=384)
    assert (edge.valid_start, edge.valid_stop) == (32, 64)
    assert edge.sample_start == -768


def test_read_excerpt_zero_pads_and_copies() -> None:
    samples = np.arange(10, dtype=np.float32)[np.newaxis]
    excerpt = read_excerpt(samples, -3, 4)
    np.testing.assert_array_equal(excerpt[0], [0, 0, 0, 0, 1, 2, 3])
    excerpt[:] = 99
    assert samples.max() == 9
    np.testing.assert_array_equal(read_excerpt(samples, 8, 12)[0], [8, 9, 0, 0])


def test_excerpt_spectrogram_rejects_an_excerpt_of_the_wrong_length() -> None:
    span = window_span(0, 64, 50_000, 1536, 384)
    with pytest.raises(ValueError, match="samples"):
        excerpt_spectrogram(np.zeros((1, span.sample_count - 1), np.float32), span, 1536, 384)


def test_windows_of_a_memory_mapped_song(tmp_path) -> None:
    samples = noise(1, 60_000)
    path = tmp_path / "stem.npy"
    np.save(path, samples)
    mapped = np.load(path, mmap_mode="r")
    full = stft(samples, 1536)
    np.testing.assert_array_equal(window_spectrogram(mapped, 40, 64, 1536), reference_columns(full, 40, 64))
