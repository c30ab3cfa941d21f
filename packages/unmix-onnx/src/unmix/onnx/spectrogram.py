"""The STFT and its inverse in NumPy, computed as `torch.stft` / `torch.istft` compute them.

A waveform model whose graph stops at its STFT (ONNX has no complex numbers and no inverse STFT)
is exported as the part in between (`unmix.core.ExportableModel`), and the runtime does these two.
They follow PyTorch's conventions, so the exported model's output matches the framework's: frames
centred by reflection padding of n_fft // 2 on both sides, a periodic Hann window of `win_length`
centred in `n_fft`, `normalized` scaling by n_fft ** -0.5, and the inverse dividing the overlap-added
frames by the overlap-added squared window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def hann_window(n_fft: int, win_length: int) -> np.ndarray:
    """A periodic Hann window of `win_length`, zero-padded to `n_fft` with the window in the middle."""
    samples = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * samples / win_length)
    left = (n_fft - win_length) // 2
    return np.pad(window, (left, n_fft - win_length - left))


def stft(audio: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """Complex (rows, bins, frames) of real (rows, samples)."""
    n_fft, hop = settings["n_fft"], settings["hop_length"]
    window = hann_window(n_fft, settings["win_length"])
    padded = np.pad(audio.astype(np.float64), [(0, 0), (n_fft // 2, n_fft // 2)], mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    spectrum = np.fft.rfft(frames * window, axis=-1)
    if settings["normalized"]:
        spectrum /= np.sqrt(n_fft)
    return spectrum.transpose(0, 2, 1)


def istft(spectrum: np.ndarray, settings: Mapping[str, Any], samples: int) -> np.ndarray:
    """Real (rows, samples) of complex (rows, bins, frames): the inverse of `stft`, cut or padded to `samples`."""
    n_fft, hop = settings["n_fft"], settings["hop_length"]
    window = hann_window(n_fft, settings["win_length"])
    if settings["normalized"]:
        spectrum = spectrum * np.sqrt(n_fft)
    frames = np.fft.irfft(spectrum.transpose(0, 2, 1), n=n_fft, axis=-1) * window
    rows, count, _ = frames.shape
    length = n_fft + hop * (count - 1)
    signal = np.zeros((rows, length))
    envelope = np.zeros(length)
    for index in range(count):
        start = index * hop
        signal[:, start:start + n_fft] += frames[:, index]
        envelope[start:start + n_fft] += window**2
    start = n_fft // 2
    signal = signal[:, start:start + samples] / np.maximum(envelope[start:start + samples], 1e-11)
    return np.pad(signal, [(0, 0), (0, samples - signal.shape[-1])])
