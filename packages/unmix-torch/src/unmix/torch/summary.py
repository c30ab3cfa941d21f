"""A Keras-style text summary of a network, and its output shape, computed without computing.

The network is rebuilt on PyTorch's "meta" device, where tensors have shapes but no data, and a
window is pushed through it with hooks on the layers that hold weights: shapes and parameter
counts of the full-size hourglass come out in milliseconds, with no memory allocated. The shapes of
2-D layers are shown as Keras shows them, (bins, frames, channels), the batches' layout, so the
two backends' summaries of the hourglass read alike; other layers show PyTorch's own shape. A
waveform network's input and output are (channels, samples), as its batches are.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import nn


@attrs.frozen
class Row:
    name: str
    kind: str
    shape: tuple[int, ...]
    parameters: int


@attrs.frozen
class Summary:
    rows: tuple[Row, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    trainable: int
    statistics: int
    """Batch-norm moving means and variances: weights that are saved but not trained (Keras' non-trainable)."""

    def text(self, title: str) -> str:
        width = max([len(row.name) for row in self.rows] + [20]) + 2
        header = f"{'Layer (type)':<{width + 14}}{'Output shape':<22}{'Param #':>12}"
        lines = [f'Model: "{title}" (torch)', "-" * len(header), header, "=" * len(header)]
        rows = [Row("input", "window", self.input_shape, 0), *self.rows, Row("output", "window", self.output_shape, 0)]
        for row in rows:
            label = f"{row.name} ({row.kind})"
            lines.append(f"{label:<{width + 14}}{str(row.shape):<22}{row.parameters:>12,}")
        lines += [
            "=" * len(header),
            f"Total params: {self.trainable + self.statistics:,}",
            f"Trainable params: {self.trainable:,}",
            f"Non-trainable params: {self.statistics:,}",
        ]
        return "\n".join(lines)


def summarize(factory: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> Summary:
    """Build the network with `factory` on the meta device and trace one (bins, frames, channels) window,
    or one (channels, samples) chunk of a waveform network."""
    with torch.device("meta"):
        network = factory()
    rows: list[Row] = []
    hooks = []
    for name, layer in network.named_modules():
        own = sum(parameter.numel() for parameter in layer.parameters(recurse=False))
        if own == 0:
            continue

        def record(module: nn.Module, inputs: object, output: object, name: str = name, own: int = own) -> None:
            # Recurrent layers return (output, state); the output is what the next layer sees.
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            rows.append(Row(name, type(module).__name__, _shown_shape(tensor.shape), own))

        hooks.append(layer.register_forward_hook(record))
    waveform = len(input_shape) == 2
    if waveform:
        batch_shape = (1, *input_shape)
    else:
        bins, frames, channels = input_shape
        batch_shape = (1, channels, bins, frames)
    network.eval()
    with torch.no_grad():
        output = network(torch.empty(batch_shape, device="meta"))
    for hook in hooks:
        hook.remove()
    statistics = sum(buffer.numel() for buffer in network.buffers() if buffer.is_floating_point())
    trainable = sum(parameter.numel() for parameter in network.parameters() if parameter.requires_grad)
    if waveform:
        output_shape = tuple(int(size) for size in output.shape[1:])
    else:
        _batch, out_channels, out_bins, out_frames = (int(size) for size in output.shape)
        output_shape = (out_bins, out_frames, out_channels)
    return Summary(tuple(rows), tuple(input_shape), output_shape, trainable, statistics)


def _shown_shape(shape: torch.Size) -> tuple[int, ...]:
    """A layer's output without the batch: a 2-D convolution's (batch, channels, bins, frames) in Keras'
    channels-last order, as the Keras backend's summary shows the same network; any other layer
    (1-D convolutions, linear and recurrent layers) in PyTorch's own order."""
    if len(shape) == 4:
        _batch, channels, bins, frames = shape
        return (int(bins), int(frames), int(channels))
    return tuple(int(size) for size in shape[1:])
