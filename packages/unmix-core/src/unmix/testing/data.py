"""A tiny collection of real audio files that a model can learn to separate within seconds.

The target is a stack of harmonics below 1.25 kHz whose pitch and loudness change from song to song;
the rest is a bass tone and noise in a band above it. The two barely overlap in frequency, so
even a one-gain-per-bin mask separates them, and a model that learns anything at all scores
above the mixture in an evaluation: a plugin's test can then tell "trains" from "does nothing".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

__all__ = ["write_tiny_collection"]

_SEED = 7
_BASE_PITCH = 220.0
_HARMONICS = (1, 2, 3)
_BASS_HZ = 55.0
_NOISE_BAND = (0.55, 0.9)  # of the Nyquist frequency: from 1.65 kHz at the lowest rate, above every harmonic
_LOWEST_RATE = 6000


def write_tiny_collection(folder: str | Path, *, songs: int = 6, seconds: float = 2.0, sample_rate: int = 8000,
                          stereo: bool = False, target: str = "vocals") -> Path:
    """Write `songs` song folders into `folder` and return it.

    The layout is unmix's `unmixio` one (`collection.dataset: "auto"` finds it): `songNN/<target>_songNN.wav`
    and `songNN/rest_songNN.wav`, float32 wav at `sample_rate`, one channel or two (`stereo`, each
    stem panned differently so the channels differ). The same arguments always write the same samples.
    """
    if songs < 1:
        raise ValueError(f"songs must be at least 1, not {songs}")
    if sample_rate < _LOWEST_RATE:
        raise ValueError(f"sample_rate must be at least {_LOWEST_RATE} Hz, so that the rest's noise band lies above "
                         f"the target's harmonics, not {sample_rate}")
    folder = Path(folder)
    rng = np.random.default_rng(_SEED)
    frames = int(seconds * sample_rate)
    if frames < 1:
        raise ValueError(f"seconds must give at least one sample at {sample_rate} Hz, not {seconds}")
    time = np.arange(frames) / sample_rate
    for index in range(songs):
        name = f"song{index:02d}"
        song = folder / name
        song.mkdir(parents=True, exist_ok=True)
        pitch = _BASE_PITCH * 2 ** (index % 12 / 12)  # the highest harmonic stays below 1.25 kHz
        harmonics = sum(np.sin(2 * np.pi * pitch * k * time) / k for k in _HARMONICS)
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * time + index)
        target_samples = 0.3 * harmonics * envelope
        rest_samples = 0.2 * np.sin(2 * np.pi * _BASS_HZ * time) + _band_noise(rng, frames, sample_rate)
        for stem, samples, pan in ((target, target_samples, 0.3), ("rest", rest_samples, 0.7)):
            channels = np.stack([samples * (1 - pan), samples * pan], axis=1) * 2 if stereo else samples
            soundfile.write(song / f"{stem}_{name}.wav", channels.astype(np.float32), sample_rate, subtype="FLOAT")
    return folder


def _band_noise(rng: np.random.Generator, frames: int, sample_rate: int) -> np.ndarray:
    """White noise kept to `_NOISE_BAND` of the spectrum, about 0.1 RMS."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, frames))
    frequencies = np.fft.rfftfreq(frames, 1.0 / sample_rate) / (sample_rate / 2)
    spectrum[(frequencies < _NOISE_BAND[0]) | (frequencies > _NOISE_BAND[1])] = 0
    noise = np.fft.irfft(spectrum, frames)
    rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    return 0.1 * noise / rms
