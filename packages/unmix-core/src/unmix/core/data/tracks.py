"""Songs as the data pipeline sees them: a track's stem files, and a song's decoded audio.

A dataset plugin turns a folder into `Track`s (which files make the target and which the rest);
the training-data cache turns each `Track` into a `SongAudio` once, stored memory-mapped, so that
training never decodes a song twice.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np


@attrs.frozen
class StemFile:
    """One audio file (or one stream of a multi-stream file such as MUSDB18's .stem.mp4)."""

    path: Path
    stream: int | None = None


@attrs.frozen
class Track:
    """A song folder: the files summed into the target stem and those summed into the rest."""

    name: str
    collection: str
    folder: Path
    target: tuple[StemFile, ...]
    rest: tuple[StemFile, ...]


@attrs.frozen(eq=False)
class SongAudio:
    """A song's two stems at one sample rate, float32 (channels, samples); the mix is their sum."""

    name: str
    collection: str
    sample_rate: int
    target: np.ndarray
    rest: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.target.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.target.shape[0])
