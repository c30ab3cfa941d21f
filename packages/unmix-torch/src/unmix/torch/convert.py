"""Weights from a Keras network (unmix-tf) into the PyTorch one: the two backends are one network.

Covers the hourglass and the band hourglass. Useful to check exactly that
(tests/cross_backend/test_cross_backend.py, tests/test_band_hourglass.py), and to run a model trained
with the Keras backend, such as the published guitar and piano models, under PyTorch:

```python
import keras
from unmix.core.plugins import plugin_manager
from unmix.torch.convert import copy_keras_weights

keras_network = keras.saving.load_model("runs/RUN/weights/best.keras", compile=False)
model = plugin_manager().get("models", "torch:hourglass")(settings, (769, 64, 1))  # same options
copy_keras_weights(model.network, keras_network)
model.save_checkpoint(Path("best.pt"))
```

It needs no Keras import of its own: it reads the Keras model's layers (`name`, `get_weights()`,
`epsilon`). Keras lists a functional model's layers in graph order, not in the order the builder
created them, so unnamed convolutions and batch norms are put back in creation order by the
counter Keras appends to their automatic names (`conv2d`, `conv2d_1`, ...; the hourglass's final
convolution is named `mask`), which is the order the torch modules declare their layers in. The
band hourglass's named layers (`to_bands`, `bin_scale`, ...) go to the torch modules of the same
name. Every shape is checked, so a network with other options fails loudly rather than copying
garbage.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from torch import nn

from unmix.core.errors import ModelError
from unmix.torch.band_hourglass import BandHourglass

_AUTOMATIC_NAME = re.compile(r"^(?:conv[12]d|batch_normalization)(?:_(\d+))?$")
FINAL_LAYER = "mask"
# Keras kernels are (height, width, in, out) and (width, in, out); PyTorch's (out, in, height, width) and
# (out, in, width).
_CONV2D_KERNEL_ORDER = (3, 2, 0, 1)
_CONV1D_KERNEL_ORDER = (2, 1, 0)
# The band hourglass's named layers: dense layers become 1x1 Conv1d, batch norms stay batch norms.
_BAND_DENSE = ("to_bands", "from_bands", "to_bins")
_BAND_NORMS = ("bin_scale", "to_bands_norm", "from_bands_norm", "to_bins_norm")


def copy_keras_weights(network: nn.Module, keras_network: Any) -> None:
    """Copy every weight and batch-norm statistic of `keras_network` into `network` (built with the same options)."""
    with torch.no_grad():
        if isinstance(network, BandHourglass):
            _copy_band_hourglass(network, keras_network)
        else:
            _copy_hourglass(network, keras_network)


def _copy_hourglass(network: nn.Module, keras_network: Any) -> None:
    convolutions = _keras_layers(keras_network, "Conv2D")
    norms = _keras_layers(keras_network, "BatchNormalization")
    torch_convolutions = [layer for layer in network.modules() if isinstance(layer, nn.Conv2d)]
    torch_norms = [layer for layer in network.modules() if isinstance(layer, nn.BatchNorm2d)]
    _check_counts(convolutions, norms, torch_convolutions, torch_norms)
    for source, target in zip(convolutions, torch_convolutions, strict=True):
        kernel, bias = source.get_weights()
        _assign(target.weight, np.transpose(kernel, _CONV2D_KERNEL_ORDER), source.name)
        _assign(target.bias, bias, source.name)
    for source, target in zip(norms, torch_norms, strict=True):
        _copy_batch_norm(source, target)


def _copy_band_hourglass(network: BandHourglass, keras_network: Any) -> None:
    """Named layers by name; the time hourglass's unnamed Conv1D and batch norms in creation order."""
    named = {layer.name: layer for layer in keras_network.layers}
    missing = [name for name in (*_BAND_DENSE, *_BAND_NORMS) if name not in named]
    if missing:
        raise ModelError(f"the Keras network has no layer {', '.join(missing)}: copy weights into the torch band "
                         "hourglass only from a band hourglass built by unmix-tf")
    for name in _BAND_DENSE:
        (kernel,) = named[name].get_weights()
        _assign(getattr(network, name).weight, np.transpose(kernel)[:, :, None], name)
    for name in _BAND_NORMS:
        _copy_batch_norm(named[name], getattr(network, name))
    convolutions = _keras_layers(keras_network, "Conv1D")
    norms = _keras_layers(keras_network, "BatchNormalization", skip=_BAND_NORMS)
    time_convolutions = [module for module in network.hourglass.modules() if isinstance(module, nn.Conv1d)]
    time_norms = [module for module in network.hourglass.modules() if isinstance(module, nn.BatchNorm1d)]
    _check_counts(convolutions, norms, time_convolutions, time_norms)
    for source, target in zip(convolutions, time_convolutions, strict=True):
        (kernel,) = source.get_weights()
        _assign(target.weight, np.transpose(kernel, _CONV1D_KERNEL_ORDER), source.name)
    for source, target in zip(norms, time_norms, strict=True):
        _copy_batch_norm(source, target)


def _check_counts(convolutions: list[Any], norms: list[Any], torch_convolutions: list[nn.Module],
                  torch_norms: list[nn.Module]) -> None:
    if len(convolutions) != len(torch_convolutions) or len(norms) != len(torch_norms):
        raise ModelError(
            f"the Keras network has {len(convolutions)} convolutions and {len(norms)} batch norms, the torch one "
            f"{len(torch_convolutions)} and {len(torch_norms)}: build both with the same training.model.options"
        )


def _copy_batch_norm(source: Any, target: nn.modules.batchnorm._BatchNorm) -> None:
    gamma, beta, mean, variance = source.get_weights()
    for tensor, value in ((target.weight, gamma), (target.bias, beta), (target.running_mean, mean),
                          (target.running_var, variance)):
        _assign(tensor, value, source.name)
    target.eps = float(getattr(source, "epsilon", target.eps))


def _keras_layers(keras_network: Any, kind: str, skip: tuple[str, ...] = ()) -> list[Any]:
    layers = [layer for layer in keras_network.layers if type(layer).__name__ == kind and layer.name not in skip]
    return sorted(layers, key=_creation_order)


def _creation_order(layer: Any) -> float:
    if layer.name == FINAL_LAYER:
        return float("inf")
    match = _AUTOMATIC_NAME.match(layer.name)
    if match is None:
        raise ModelError(
            f"Keras layer '{layer.name}' has no automatic name, so the order it was created in is unknown: "
            "copy weights only from networks built by unmix-tf"
        )
    return float(match.group(1) or 0)


def _assign(tensor: torch.Tensor, value: np.ndarray, name: str) -> None:
    if tuple(tensor.shape) != tuple(value.shape):
        raise ModelError(
            f"Keras layer '{name}' holds weights of shape {tuple(value.shape)} where the torch network has "
            f"{tuple(tensor.shape)}: build both with the same training.model.options and input shape"
        )
    tensor.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
