"""Losses and metrics by the seed's names, with the Keras backend's definitions.

Every loss takes (targets, outputs, inputs): the seed's production loss `L11_loss` multiplies the
predicted mask by the network input (`model.input` in the seed's Keras closure), so the network
stays a plain mask predictor and `predict()` returns the raw mask. Losses that do not need the
input ignore it. The numbers match `unmix.tf.losses` (same clipping constants), so results.csv
reads the same whichever backend trained.

`summed` marks losses whose value grows with the batch (L11_loss sums over batch, frequency,
time and channel). Under DDP the gradients of the processes are averaged, so a summed loss is
scaled by the number of processes before the backward pass: the update then equals the
one-process update on the whole (all processes') batch, as under tf.distribute.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import attrs
import torch

from unmix.core.errors import ModelError

LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# Keras' epsilon: the clipping the seed's Keras 2 losses applied before logarithms.
EPSILON = 1e-7
# Below this, a square root's gradient is infinite; clamping keeps a perfect fit from producing NaN weights.
SQRT_FLOOR = 1e-12


@attrs.frozen
class Loss:
    function: LossFunction
    summed: bool = False
    uses_input: bool = False


@attrs.frozen
class Metric:
    function: Callable[[torch.Tensor], torch.Tensor]
    # How values of several batches (and processes) combine: "mean" weights by batch size, "max" takes the largest.
    reduction: str = "mean"


def _mean_squared_error(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.square(outputs - targets))


def _mean_absolute_error(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.abs(outputs - targets))


def _mean_squared_log_error(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    first = torch.log(torch.clamp(outputs, min=EPSILON) + 1.0)
    second = torch.log(torch.clamp(targets, min=EPSILON) + 1.0)
    return torch.mean(torch.square(first - second))


def _squared_hinge(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.square(torch.clamp(1.0 - targets * outputs, min=0.0)))


def _root_mean_squared_error(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.clamp(torch.mean(torch.square(outputs - targets)), min=SQRT_FLOOR))


def _binary_crossentropy(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    probabilities = torch.clamp(outputs, EPSILON, 1.0 - EPSILON)
    entropy = targets * torch.log(probabilities) + (1.0 - targets) * torch.log(1.0 - probabilities)
    return -torch.mean(entropy)


def _euclidean_loss(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.clamp(torch.sum(torch.square(targets - outputs)), min=SQRT_FLOOR))


def _l11_loss(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.sum(torch.abs(targets - inputs * outputs))


def _l11_loss_mean(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.abs(targets - inputs * outputs))


LOSSES: dict[str, Loss] = {
    "mean_squared_error": Loss(_mean_squared_error),
    "mean_absolute_error": Loss(_mean_absolute_error),
    "mean_squared_log_error": Loss(_mean_squared_log_error),
    "squared_hinge": Loss(_squared_hinge),
    "root_mean_squared_error": Loss(_root_mean_squared_error),
    "binary_crossentropy": Loss(_binary_crossentropy),
    # The seed's K.mean over all axes; the same number as mean_squared_error for equally sized windows.
    "mean_squared_error_noaxis": Loss(_mean_squared_error),
    "euclidean_loss": Loss(_euclidean_loss, summed=True),
    "L11_loss": Loss(_l11_loss, summed=True, uses_input=True),
    # Not in the seed: L11_loss divided by the number of values, so the learning rate that suits
    # it does not depend on batch size, window size or mono/stereo.
    "L11_loss_mean": Loss(_l11_loss_mean, uses_input=True),
}

METRICS: dict[str, Metric] = {
    "mean_pred": Metric(torch.mean),
    "max_pred": Metric(torch.max, reduction="max"),
}


def get_loss(name: str) -> Loss:
    return LOSSES[_find(name, LOSSES, "training.loss_function", "loss", "losses")]


def get_metric(name: str) -> Metric:
    return METRICS[_find(name, METRICS, "training.metrics", "metric", "metrics")]


def _find(name: str, known: dict, key: str, kind: str, kinds: str) -> str:
    """The exact name, else a case-insensitive match: configurations write `l11_loss` as often as `L11_loss`."""
    if name in known:
        return name
    for candidate in known:
        if candidate.lower() == str(name).lower():
            return candidate
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ModelError(f"{key}: unknown {kind} '{name}'{hint}; known {kinds}: {', '.join(known)}")
