"""The seed's two optimisers, with the hyper-parameters every backend must give them.

The seed trained with Keras' defaults, and a configuration tuned on one backend should train the
same way on the other, so the values are declared here in Keras' argument names and each backend
only supplies its framework's optimiser class for each name (PyTorch's defaults differ: Adam's
epsilon 1e-8, RMSprop's decay 0.99 and epsilon 1e-8).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from unmix.core.models.names import NameField, find_name

OPTIMIZER_FIELD = NameField("training.optimizer.name", "optimiser", "optimisers", hint_ignores_case=True)

KERAS_EPSILON = 1e-7


@attrs.frozen
class OptimizerDefinition:
    """One optimiser a configuration can name; `settings` in Keras' argument names (the learning rate aside)."""

    name: str
    settings: Mapping[str, float]


OPTIMIZERS: tuple[OptimizerDefinition, ...] = (
    OptimizerDefinition("adam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": KERAS_EPSILON}),
    OptimizerDefinition("rmsprop", {"rho": 0.9, "epsilon": KERAS_EPSILON}),
)

_OPTIMIZERS_BY_NAME = {optimizer.name: optimizer for optimizer in OPTIMIZERS}


def find_optimizer(name: str) -> OptimizerDefinition:
    """The optimiser a configuration names, in any case, or the one-line error with a did-you-mean."""
    return _OPTIMIZERS_BY_NAME[find_name(name, list(_OPTIMIZERS_BY_NAME), OPTIMIZER_FIELD)]
