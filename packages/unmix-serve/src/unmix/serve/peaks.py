"""Waveform outlines for the page: the loudest sample of each of a few hundred stretches of a file.

Computed here rather than in the browser, which would otherwise decode every stem in full just to
draw it. The file is read with the project's own streaming reader, so whatever unmix separates
(any format ffmpeg decodes) can be drawn, in memory that does not grow with the song.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from unmix.core.data.streaming import AudioReader

COLUMNS = 600
_HOP = 64
_BLOCK = 65536


@attrs.frozen
class Outline:
    peaks: tuple[float, ...]
    """Per column, the largest absolute sample over every channel, in 0..1 (clipped above full scale)."""
    frames: int
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def outline(path: Path, columns: int = COLUMNS) -> Outline:
    """`columns` peaks over the whole file, whose length need not be known before it is read."""
    reader = AudioReader(path)
    envelope: list[np.ndarray] = []
    carry = np.zeros(0, np.float32)
    frames = 0
    try:
        for block in reader.blocks(_BLOCK):
            frames += block.shape[1]
            loudest = np.concatenate([carry, np.abs(block).max(axis=0)])
            whole = loudest.size // _HOP * _HOP
            envelope.append(loudest[:whole].reshape(-1, _HOP).max(axis=1))
            carry = loudest[whole:]
    finally:
        reader.close()
    if carry.size:
        envelope.append(carry.max(keepdims=True))
    hops = np.concatenate(envelope) if envelope else np.zeros(0, np.float32)
    if hops.size == 0:
        return Outline((), frames, reader.info.sample_rate)
    groups = np.array_split(hops, min(columns, hops.size))
    peaks = np.clip([group.max() for group in groups], 0.0, 1.0)
    return Outline(tuple(round(float(value), 4) for value in peaks), frames, reader.info.sample_rate)
