"""Tiny hourglass configurations and synthetic data shared by the backend tests (tests/tf, tests/torch)
and their worker processes.

The shipped networks cost seconds per window on a CPU; these variants (65 bins, 8 frames,
2 stacks, 8 filters) train a step in tens of milliseconds, so tests can afford real training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from unmix.core.config.schema import (
    Collection,
    Configuration,
    Model,
    Optimizer,
    SpectrogramGeneration,
    Training,
    Transformation,
    TransformationOptions,
)
from unmix.core.interfaces import SeparationModel
from unmix.core.plugins import plugin_manager

FFT_LENGTH = 128
FRAMES = 8
INPUT_SHAPE = (FFT_LENGTH // 2 + 1, FRAMES, 1)
TINY_OPTIONS = {"stacks": 2, "hg_module": {"filters": 8}}
# Batch norm in two groups, so moving statistics (buffers, not parameters) are covered too.
NORM_OPTIONS = {"stacks": 2, "initial_convolutions": {"batchnormalization": True},
                "hg_module": {"filters": 8, "batchnormalization": True}}


def tiny_settings(
    name: str = "hourglass",
    options: dict[str, Any] | None = None,
    *,
    backend: str = "tensorflow",
    fft_length: int = FFT_LENGTH,
    frames: int = FRAMES,
    step: int | None = None,
    stereo: bool = False,
    **training: Any,
) -> Configuration:
    """A configuration for the tiny hourglass; `training` overrides keys of training.* (loss_function, ...).

    `step` is how many centre frames the frame networks (mask, mask-ibm, rnn) predict; it defaults to all.
    """
    if options is None:
        options = TINY_OPTIONS
    training.setdefault("optimizer", Optimizer(name="adam", lr=1e-3))
    training.setdefault("batch_size", 2)
    training.setdefault("backend", backend)
    return Configuration(
        collection=Collection(stereo=stereo),
        spectrogram_generation=SpectrogramGeneration(fft_length=fft_length),
        transformation=Transformation(options=TransformationOptions(size=frames, step=step or frames)),
        training=Training(model=Model(name=name, options=options), **training),
    )


def half_gain_batches(count: int, seed: int = 0, batch_size: int = 2,
                      shape: tuple[int, int, int] = INPUT_SHAPE) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches whose target is half the input: the best mask is 0.5 everywhere, so the loss can fall."""
    generator = np.random.default_rng(seed)
    for _ in range(count):
        inputs = generator.random((batch_size, *shape), dtype=np.float32)
        yield inputs, 0.5 * inputs


def build(settings: Configuration, input_shape: tuple[int, int, int] = INPUT_SHAPE) -> SeparationModel:
    """The registered builder for the configuration's model, looked up as core does ("<backend>:<name>")."""
    key = f"{settings.training.backend}:{settings.training.model.name}"
    return plugin_manager().get("models", key)(settings, input_shape)


def ignore(step: int, running: dict[str, float]) -> None:
    """An `on_batch` callback for tests that do not watch progress."""
