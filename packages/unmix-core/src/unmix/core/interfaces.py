"""The small typed contracts between core and its plugins.

Core never imports a deep-learning framework: the training driver and the prediction engine
talk to a backend only through `SeparationModel`, and find the backend's model through the
`register_models` hook, which registers a `ModelBuilder` under a name such as "hourglass".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs
import numpy as np

from unmix.core.config.schema import Configuration

Batch = tuple[np.ndarray, np.ndarray]
"""Model inputs and targets, each float32 (batch, bins, frames, channels)."""

Metrics = dict[str, float]


@runtime_checkable
class SeparationModel(Protocol):
    """A network that maps mix-magnitude windows to masks (or magnitudes), with its optimiser."""

    backend: str
    """Which backend built it ("tensorflow", "torch"): checkpoints are only readable by their own."""

    checkpoint_suffix: str
    """File suffix of its checkpoints (".keras", ".pt"), so a run folder shows which backend wrote them."""

    def trainable_parameters(self) -> int: ...

    def summary(self) -> str: ...

    def train_epoch(
        self, batches: Iterable[Batch], steps: int, on_batch: Callable[[int, Metrics], None]
    ) -> Metrics:
        """Train on `steps` batches; `on_batch(step, running metrics)` drives the progress bar."""
        ...

    def evaluate(self, batches: Iterable[Batch], steps: int) -> Metrics:
        """Loss and metrics on held-out batches, without updating weights."""
        ...

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The raw network output for a batch of inputs: (batch, bins, output frames, channels), where
        output frames is the transform's output width (the window size, or `step` for centre masks)."""
        ...

    @property
    def learning_rate(self) -> float: ...

    @learning_rate.setter
    def learning_rate(self, value: float) -> None: ...

    def save_checkpoint(self, path: Path) -> None:
        """Weights and optimiser state in one file, written whole or not at all."""
        ...

    def load_checkpoint(self, path: Path) -> None: ...


class ModelBuilder(Protocol):
    """What a `register_models` hook registers: builds a model for a configuration.

    `input_shape` is (bins, frames, channels) as the transform produces it.
    """

    def __call__(self, settings: Configuration, input_shape: tuple[int, int, int]) -> SeparationModel: ...


@attrs.frozen
class SongInput:
    """A song to separate: a local file (downloaded first if it came from the network) and its name."""

    name: str
    path: Path


class Source(Protocol):
    """What a `register_sources` hook registers: turns a URI (file, folder, link) into songs."""

    name: str

    def matches(self, uri: str) -> bool:
        """Whether this source handles `uri` (e.g. a YouTube link, an existing folder)."""
        ...

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        """The songs behind `uri`; downloads go to `temp_folder`. Raises UnmixError when unreachable."""
        ...


@attrs.frozen
class ExportOptions:
    """How stems are encoded: sample format for wav/flac, bitrate for lossy formats, what to do
    with peaks above full scale (`clip`, or `normalize` the whole file below 0 dBFS)."""

    bit_depth: str = attrs.field(default="16", validator=attrs.validators.in_(("16", "24", "float")))
    bitrate_kbps: int = 192
    peak: str = attrs.field(default="clip", validator=attrs.validators.in_(("clip", "normalize")))


class StemWriter(Protocol):
    """One output file being written block by block; it appears under its name only on close()."""

    def write(self, block: np.ndarray) -> None:
        """Append float32 (channels, samples) audio."""
        ...

    def close(self) -> None:
        """Finish the file and move it into place."""
        ...

    def abort(self) -> None:
        """Remove everything written so far."""
        ...


class Exporter(Protocol):
    """What a `register_exporters` hook registers, under its format name ("wav", "flac", ...)."""

    name: str
    extension: str

    def open(self, path: Path, sample_rate: int, channels: int, options: ExportOptions) -> StemWriter: ...
