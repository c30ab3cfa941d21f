"""The band hourglass in PyTorch: the same network as `unmix.tf.band_hourglass`, layer for layer.

See that module (and docs/models.md) for why it is built this way. Like `unmix.torch.hourglass`
it keeps Keras' conventions where PyTorch's defaults differ, so the same options give the same
parameter counts and a fresh model trains like a fresh Keras one: batch norm with epsilon 1e-3
and moving-average momentum 0.99 (0.01 in PyTorch's terms), Glorot-uniform weights. Frames are
flattened as Keras flattens them: (frames, bins, channels), channel fastest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as functional
from torch import nn

from unmix.torch.hourglass import BATCH_NORM_EPSILON, BATCH_NORM_MOMENTUM


def _batch_norm(features: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(features, eps=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM)


class TimeConvolution(nn.Module):
    """Conv1d along time (same padding, no bias) -> batch norm -> ReLU -> optional dropout."""

    def __init__(self, in_features: int, filters: int, size: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_features, filters, size, padding=size // 2, bias=False)
        self.norm = _batch_norm(filters)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(functional.relu(self.norm(self.conv(x)), inplace=True))


class TimeHourglass(nn.Module):
    """One level of the recursion along time: a full-rate branch plus a pooled branch, added back together."""

    def __init__(self, depth: int, in_features: int, filters: int, size: int, dropout: float) -> None:
        super().__init__()
        self.upper = TimeConvolution(in_features, filters, size, dropout)
        self.lower_in = TimeConvolution(in_features, filters, size, dropout)
        self.inner: nn.Module
        if depth > 1:
            self.inner = TimeHourglass(depth - 1, filters, filters, size, dropout)
        else:
            self.inner = TimeConvolution(filters, filters, size, dropout)
        self.lower_out = TimeConvolution(filters, filters, size, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lower = self.lower_out(self.inner(self.lower_in(functional.max_pool1d(x, 2))))
        return self.upper(x) + functional.interpolate(lower, scale_factor=2.0, mode="nearest")


class BandHourglass(nn.Module):
    """Mix-magnitude windows (batch, channels, bins, frames) in, masks in [0, 1] of the same shape out."""

    def __init__(self, options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.options = dict(options)
        self.input_shape = tuple(int(size) for size in input_shape)
        bins, _frames, channels = self.input_shape
        bands = options["bands"]
        self.bin_scale = _batch_norm(bins * channels)
        self.to_bands = nn.Conv1d(bins * channels, bands, 1, bias=False)
        self.to_bands_norm = _batch_norm(bands)
        self.hourglass = TimeHourglass(options["stacks"], bands, options["filters"], options["kernel_size"],
                                       options["dropoutfactor"])
        self.from_bands = nn.Conv1d(bands + options["filters"], bands, 1, bias=False)
        self.from_bands_norm = _batch_norm(bands)
        self.to_bins = nn.Conv1d(bands, bins * channels, 1, bias=False)
        self.to_bins_norm = _batch_norm(bins * channels)
        for layer in self.modules():
            if isinstance(layer, nn.Conv1d):
                nn.init.xavier_uniform_(layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, bins, frames = x.shape
        # (batch, channels, bins, frames) -> (batch, bins * channels, frames), channel fastest as Keras flattens.
        spectra = x.permute(0, 2, 1, 3).reshape(batch, bins * channels, frames)
        band_features = torch.tanh(self.to_bands_norm(self.to_bands(self.bin_scale(spectra))))
        x = torch.cat([band_features, self.hourglass(band_features)], dim=1)
        x = functional.relu(self.from_bands_norm(self.from_bands(x)), inplace=True)
        masks = torch.sigmoid(self.to_bins_norm(self.to_bins(x)))
        return masks.reshape(batch, bins, channels, frames).permute(0, 2, 1, 3)

