"""PyTorch formulas for the losses and metrics that `unmix.core.models.losses` declares.

Which names exist, how they are looked up, how processes' values combine and which losses see
the network input are declared once in core, with the clipping constants; this module holds only
the tensor arithmetic. The numbers match `unmix.tf.losses` (tests/cross_backend/test_losses.py
checks), so results.csv reads the same whichever backend trained.

Under DDP the gradients of the processes are averaged, so a summed loss (reduction "sum") is
scaled by the number of processes before the backward pass: the update then equals the
one-process update on the whole (all processes') batch, as under tf.distribute.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from unmix.core.models.losses import (
    EPSILON,
    SQRT_FLOOR,
    Loss,
    Metric,
    bind_losses,
    bind_metrics,
    find_loss,
    find_metric,
    stft_loss_resolutions,
)

LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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


def _masked_squared_error(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    return torch.mean(torch.square(targets - inputs * outputs))


def _multi_resolution_stft(targets: torch.Tensor, outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Spectral convergence plus log-magnitude L1, averaged over core's resolutions, of (batch, channels,
    samples) chunks: every channel is its own signal."""
    samples = outputs.shape[-1]
    target_signals, output_signals = targets.reshape(-1, samples), outputs.reshape(-1, samples)
    resolutions = stft_loss_resolutions(samples)
    total = outputs.new_zeros(())
    for fft_size, hop in resolutions:
        target_magnitude = _stft_magnitude(target_signals, fft_size, hop)
        output_magnitude = _stft_magnitude(output_signals, fft_size, hop)
        convergence = (torch.linalg.vector_norm(target_magnitude - output_magnitude)
                       / torch.linalg.vector_norm(target_magnitude))
        log_distance = torch.mean(torch.abs(torch.log(target_magnitude) - torch.log(output_magnitude)))
        total = total + convergence + log_distance
    return total / len(resolutions)


def _stft_magnitude(signals: torch.Tensor, fft_size: int, hop: int) -> torch.Tensor:
    """|STFT| with a periodic Hann window, centred with zero padding, floored at sqrt(EPSILON): the floor
    keeps the logarithm, the convergence's denominator and the square root's gradient finite on silence."""
    window = torch.hann_window(fft_size, periodic=True, dtype=signals.dtype, device=signals.device)
    spectrum = torch.stft(signals, fft_size, hop_length=hop, window=window, center=True, pad_mode="constant",
                          return_complex=True)
    return torch.sqrt(torch.clamp(torch.view_as_real(spectrum).square().sum(-1), min=EPSILON))


LOSS_FORMULAS: dict[str, LossFunction] = {
    "mean_squared_error": _mean_squared_error,
    "mean_absolute_error": _mean_absolute_error,
    "mean_squared_log_error": _mean_squared_log_error,
    "squared_hinge": _squared_hinge,
    "root_mean_squared_error": _root_mean_squared_error,
    "binary_crossentropy": _binary_crossentropy,
    "euclidean_loss": _euclidean_loss,
    "L11_loss": _l11_loss,
    "L11_loss_mean": _l11_loss_mean,
    "masked_squared_error": _masked_squared_error,
    "multi_resolution_stft": _multi_resolution_stft,
}

METRIC_FORMULAS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean_pred": torch.mean,
    "max_pred": torch.max,
}

LOSSES: dict[str, Loss] = bind_losses(LOSS_FORMULAS)
METRICS: dict[str, Metric] = bind_metrics(METRIC_FORMULAS)


def get_loss(name: str) -> Loss:
    """The configured loss with this backend's formula; an unknown name is core's one-line error."""
    return LOSSES[find_loss(name).name]


def get_metric(name: str) -> Metric:
    """The configured metric with this backend's formula; an unknown name is core's one-line error."""
    return METRICS[find_metric(name).name]
