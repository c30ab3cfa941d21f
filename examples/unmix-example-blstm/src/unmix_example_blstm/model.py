"""Open-Unmix's network (Stöter et al. 2019, open-unmix.py's `OpenUnmix`) as an unmix mask network.

Per frame, the bins of every channel are scaled (batch norm), squeezed to `hidden_size` features
(linear, batch norm, tanh), then a bidirectional LSTM runs along the frames; its output joins its
input (skip connection) and two linear layers with batch norm give a value per bin and channel.
Open-Unmix ends in a ReLU magnitude multiplied by the mix; here a sigmoid gives the mask in
[0, 1] that unmix's `train_window_predict_mask` transformation asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class BLSTM(nn.Module):
    """Mix-magnitude windows (batch, channels, bins, frames) in, masks of the same shape out."""

    def __init__(self, options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        bins, _frames, channels = (int(size) for size in input_shape)
        hidden, layers = options["hidden_size"], options["layers"]
        self.bins = options["max_bin"] or bins  # Open-Unmix looks at the lowest bins only, predicts all
        self.input_scale = nn.BatchNorm1d(self.bins * channels)
        self.encode = nn.Sequential(nn.Linear(self.bins * channels, hidden, bias=False), nn.BatchNorm1d(hidden),
                                    nn.Tanh())
        self.lstm = nn.LSTM(hidden, hidden // 2, num_layers=layers, bidirectional=True, batch_first=True,
                            dropout=options["dropout"] if layers > 1 else 0.0)
        self.decode = nn.Sequential(
            nn.Linear(2 * hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, bins * channels, bias=False), nn.BatchNorm1d(bins * channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, bins, frames = x.shape
        # One row of features per frame: (batch * frames, channels * bins), channels outermost.
        rows = x[:, :, : self.bins].permute(0, 3, 1, 2).reshape(batch * frames, channels * self.bins)
        encoded = self.encode(self.input_scale(rows))
        recurrent, _state = self.lstm(encoded.reshape(batch, frames, -1))
        joined = torch.cat([encoded, recurrent.reshape(batch * frames, -1)], dim=1)
        masks = torch.sigmoid(self.decode(joined))
        return masks.reshape(batch, frames, channels, bins).permute(0, 2, 3, 1)
