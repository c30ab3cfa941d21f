"""A torch network as an ONNX graph, for `unmix export` (unmix-onnx) and runtimes without PyTorch.

PyTorch's exporter (`torch.onnx.export` with `dynamo=True`, which needs the onnx and onnxscript
packages: `pip install unmix-torch[onnx]`) traces the network once on an example batch of two and
leaves the batch axis free. What is traced:

- a spectrogram network, wrapped so the graph takes and returns (batch, bins, frames, channels) as
  `TorchSeparationModel.predict` does, not PyTorch's channels-first layout;
- a waveform network with its STFT inside (it has `masked_spectrogram` and `stft`, as the RoFormers
  do): only `masked_spectrogram`, because ONNX has no complex numbers and no inverse STFT; the
  runtime does both with the settings returned here;
- any other waveform network as it is, (batch, channels, samples) in and out.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unmix.core.errors import ModelError


class _ChannelsLast(nn.Module):
    """The network between NHWC arrays, as `predict` sees it."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.network(windows.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class _MaskedSpectrogram(nn.Module):
    """The part of a waveform network between its STFT and inverse STFT."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, stft: torch.Tensor) -> torch.Tensor:
        return self.network.masked_spectrogram(stft)


def export_network(network: nn.Module, input_shape: Sequence[int], waveform: bool, path: Path) -> dict[str, Any]:
    """Write `network` (on the CPU, in eval mode) to `path`; what the graph computes, as `ExportableModel` says."""
    network = network.float().eval()
    example = torch.zeros((2, *input_shape))
    if waveform and hasattr(network, "masked_spectrogram"):
        module: nn.Module = _MaskedSpectrogram(network)
        with torch.no_grad():
            example = torch.view_as_real(network.spectrogram(example))
        description: dict[str, Any] = {"graph": "masked_spectrogram", "stft": dict(network.stft)}
    else:
        module = network if waveform else _ChannelsLast(network)
        description = {"graph": "predict"}
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it and says so less clearly)
    except ImportError:
        raise ModelError("exporting a torch model to ONNX needs the onnx and onnxscript packages: "
                         "pip install 'unmix-torch[onnx]'") from None
    with torch.no_grad(), _exporter_quiet():
        torch.onnx.export(module.eval(), (example,), str(path), input_names=["input"], output_names=["output"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False)
    return description


@contextlib.contextmanager
def _exporter_quiet() -> Iterator[None]:
    """The exporter's notes about packages unmix never uses (torchvision) and its own deprecations are not
    the user's to act on; its errors still surface as exceptions."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        exporter_log.setLevel(level)
