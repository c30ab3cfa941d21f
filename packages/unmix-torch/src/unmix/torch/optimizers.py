"""PyTorch's class for each optimiser `unmix.core.models.optimizers` declares, given Keras' settings.

Core declares the hyper-parameters in Keras' names (a configuration tuned on the Keras backend
should train the same way here); this module only translates them. One difference stays:
PyTorch adds epsilon after the bias correction of the second moment (Keras before, RMSprop
inside the square root), which only matters while gradients are around 1e-7.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from unmix.core.models.optimizers import find_optimizer

OptimizerBuilder = Callable[[list[torch.nn.Parameter], float, Mapping[str, float]], torch.optim.Optimizer]


def _adam(parameters: list[torch.nn.Parameter], learning_rate: float,
          settings: Mapping[str, float]) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=learning_rate, betas=(settings["beta_1"], settings["beta_2"]),
                            eps=settings["epsilon"])


def _rmsprop(parameters: list[torch.nn.Parameter], learning_rate: float,
             settings: Mapping[str, float]) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(parameters, lr=learning_rate, alpha=settings["rho"], eps=settings["epsilon"])


OPTIMIZERS: dict[str, OptimizerBuilder] = {"adam": _adam, "rmsprop": _rmsprop}


def make_optimizer(name: str, learning_rate: float, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The configured optimiser over `parameters`; an unknown name is core's one-line error."""
    definition = find_optimizer(name)
    return OPTIMIZERS[definition.name](parameters, learning_rate, definition.settings)
