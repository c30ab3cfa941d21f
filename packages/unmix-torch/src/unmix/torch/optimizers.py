"""The seed's two optimisers by name, with Keras' hyper-parameters rather than PyTorch's.

A configuration tuned on the Keras backend should train the same way here, so the defaults
that differ are set to Keras': Adam's epsilon 1e-7 (PyTorch 1e-8), RMSprop's decay 0.9 (PyTorch
0.99) and epsilon 1e-7. One difference stays: PyTorch adds epsilon after the bias correction of
the second moment (Keras before, RMSprop inside the square root), which only matters while
gradients are around 1e-7.
"""

from __future__ import annotations

import difflib

import torch

from unmix.core.errors import ModelError

KERAS_EPSILON = 1e-7
OPTIMIZERS = ("adam", "rmsprop")


def make_optimizer(name: str, learning_rate: float, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    kind = str(name).lower()
    if kind == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, betas=(0.9, 0.999), eps=KERAS_EPSILON)
    if kind == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=learning_rate, alpha=0.9, eps=KERAS_EPSILON)
    close = difflib.get_close_matches(kind, list(OPTIMIZERS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ModelError(
        f"training.optimizer.name: unknown optimiser '{name}'{hint}; known optimisers: {', '.join(OPTIMIZERS)}"
    )

