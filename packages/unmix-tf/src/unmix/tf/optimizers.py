"""Keras' class for each optimiser `unmix.core.models.optimizers` declares, wrapped for loss scaling
when training in mixed precision."""

from __future__ import annotations

import keras

from unmix.core.models.optimizers import find_optimizer

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
}


def make_optimizer(name: str, learning_rate: float, mixed_precision: bool) -> keras.optimizers.Optimizer:
    """Float16 gradients underflow without loss scaling, so mixed precision gets Keras' dynamic loss scale."""
    definition = find_optimizer(name)
    optimizer = OPTIMIZERS[definition.name](learning_rate=learning_rate, **definition.settings)
    if mixed_precision:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
