"""The seed's production network in PyTorch: one recursive hourglass module that predicts a soft mask.

The same network as `unmix.tf.hourglass` (itself a port of unmix-net's `models/hourglass.py`,
after Park et al. 2018), layer for layer, so that the two backends are one model: the same
options give the same trainable parameter counts (splitstrument's guitar options: 7,713,857),
and weights copied from a Keras hourglass give the same mask (`unmix.torch.convert`,
tests/cross_backend/test_cross_backend.py). To get there it keeps Keras' conventions where PyTorch's
defaults differ:

- Batch norm uses Keras' epsilon 1e-3 and moving-average momentum 0.99 (PyTorch: 1e-5 and 0.1,
  with momentum meaning the opposite weight, hence 0.01 here). As in Keras, only gamma and beta
  are trainable; the moving statistics are buffers.
- Convolution kernels start Glorot-uniform with zero biases, Keras' initialisers, so a fresh
  torch model trains like a fresh Keras one.
- Every group ends in a Dropout even at rate 0, ReLU comes before batch norm, and the head's
  1x1 convolution never has batch norm: the seed's order, kept for the parameter counts and the
  weight mapping. (ReLU runs in place on each convolution's fresh output, which nothing else
  reads: one activation-sized buffer less per layer.)

The network computes in NCHW (channels first, as PyTorch's layers are declared); the model keeps
its weights and activations in channels-last memory (`unmix.torch.model`), which is how the
batches (batch, bins, frames, channels) arrive anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as functional
from torch import nn

from unmix.core.models.hourglass_options import FRONT_KERNELS

# Keras' BatchNormalization defaults, in PyTorch's terms.
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.01


class Convolution(nn.Module):
    """Conv (same padding) -> ReLU -> optional batch norm -> dropout: one group of the seed's network."""

    def __init__(self, in_channels: int, filters: int, size: int, batch_norm: bool, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, filters, size, padding=size // 2)
        self.norm = (nn.BatchNorm2d(filters, eps=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM)
                     if batch_norm else nn.Identity())
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(functional.relu(self.conv(x), inplace=True)))


class HourglassModule(nn.Module):
    """One level of the recursion: a full-resolution branch plus a pooled branch, added back together.

    Submodules are declared in the order the Keras builder creates its layers (upper, lower_in,
    inner, lower_out), which is the order `unmix.torch.convert` copies Keras weights in.
    """

    def __init__(self, depth: int, in_channels: int, filters: int, batch_norm: bool, dropout: float) -> None:
        super().__init__()
        self.upper = Convolution(in_channels, filters, 3, batch_norm, dropout)
        self.lower_in = Convolution(in_channels, filters, 3, batch_norm, dropout)
        self.inner: nn.Module
        if depth > 1:
            self.inner = HourglassModule(depth - 1, filters, filters, batch_norm, dropout)
        else:
            self.inner = Convolution(filters, filters, 3, batch_norm, dropout)
        self.lower_out = Convolution(filters, filters, 3, batch_norm, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lower = self.lower_out(self.inner(self.lower_in(functional.max_pool2d(x, 2))))
        return self.upper(x) + functional.interpolate(lower, scale_factor=2.0, mode="nearest")


class Hourglass(nn.Module):
    """Mix-magnitude windows (batch, channels, bins, frames) in, masks of the same shape out."""

    def __init__(self, options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.options = dict(options)
        self.input_shape = tuple(int(size) for size in input_shape)
        channels = self.input_shape[2]
        initial = options["initial_convolutions"]
        module = options["hg_module"]
        end = options["hg_module_end"]
        blocks = []
        previous = channels
        for filters, size in zip(initial["filters"], FRONT_KERNELS, strict=True):
            blocks.append(Convolution(previous, filters, size, initial["batchnormalization"],
                                      initial["dropoutfactor"]))
            previous = filters
        self.initial = nn.Sequential(*blocks)
        self.module = HourglassModule(options["stacks"], previous, module["filters"],
                                      module["batchnormalization"], module["dropoutfactor"])
        head = end["filters"]
        self.head = nn.Sequential(
            Convolution(module["filters"], head, 3, end["batchnormalization"], end["dropoutfactor"]),
            Convolution(head, head, 1, False, end["dropoutfactor"]),
        )
        self.mask = nn.Conv2d(head, channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras' initialisers (Glorot-uniform kernels, zero biases) rather than PyTorch's Kaiming ones."""
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The DC row is cropped so the height (fft_length / 2) halves evenly, and padded back as zeros.
        x = x[:, :, 1:, :]
        x = self.head(self.module(self.initial(x)))
        return functional.pad(self.mask(x), (0, 0, 1, 0))

