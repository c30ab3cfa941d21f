"""Audio files the serve tests upload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile


def write_song(path: Path, seconds: float = 1.5, sample_rate: int = 22050, channels: int = 2) -> Path:
    """A short stereo song: two tones and a little noise, different in each channel."""
    rng = np.random.default_rng(3)
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    left = 0.3 * np.sin(2 * np.pi * 440 * time) + 0.05 * rng.normal(size=time.size)
    right = 0.2 * np.sin(2 * np.pi * 220 * time) + 0.05 * rng.normal(size=time.size)
    samples = np.stack([left, right], axis=1)[:, :channels]
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples.astype(np.float32), sample_rate, subtype="PCM_16")
    return path
