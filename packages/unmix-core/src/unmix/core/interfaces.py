"""The small typed contracts between core and its plugins.

Core never imports a deep-learning framework: the training driver and the prediction engine
talk to a backend only through `SeparationModel`, and find the backend's model through the
`register_models` hook, which registers a `ModelBuilder` under a name such as "hourglass".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from unmix.core.config_schema import Configuration

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
        """The raw network output for a batch of inputs, same shape as the inputs."""
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
