"""The seed's two optimisers by name, wrapped for loss scaling when training in mixed precision."""

from __future__ import annotations

import difflib

import keras

from unmix.core.errors import ModelError

OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}


def make_optimizer(name: str, learning_rate: float, mixed_precision: bool) -> keras.optimizers.Optimizer:
    """Float16 gradients underflow without loss scaling, so mixed precision gets Keras' dynamic loss scale."""
    kind = OPTIMIZERS.get(str(name).lower())
    if kind is None:
        close = difflib.get_close_matches(str(name).lower(), list(OPTIMIZERS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ModelError(
            f"training.optimizer.name: unknown optimiser '{name}'{hint}; known optimisers: {', '.join(OPTIMIZERS)}"
        )
    optimizer = kind(learning_rate=learning_rate)
    if mixed_precision:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
