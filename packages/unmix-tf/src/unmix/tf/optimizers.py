"""Keras' class for each optimiser `unmix.core.models.optimizers` declares, wrapped for loss scaling
when training in float16."""

from __future__ import annotations

import keras

from unmix.core.models.optimizers import find_optimizer

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
}


def make_optimizer(name: str, learning_rate: float, loss_scale: bool) -> keras.optimizers.Optimizer:
    """`loss_scale` for float16 training, whose gradients underflow without Keras' dynamic loss scale."""
    definition = find_optimizer(name)
    optimizer = OPTIMIZERS[definition.name](learning_rate=learning_rate, **definition.settings)
    if loss_scale:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
