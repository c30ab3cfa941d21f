"""Weights from a Keras hourglass (unmix-tf) into the PyTorch one: the two backends are one network.

Useful to check exactly that (tests/torch/test_cross_backend.py), and to run a model trained
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
created them, so convolutions and batch norms are put back in creation order by the counter
Keras appends to their automatic names (`conv2d`, `conv2d_1`, ...; the final convolution is
named `mask`), which is the order `unmix.torch.hourglass` declares its layers in. Every shape is
checked, so a network with other options fails loudly rather than copying garbage.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from torch import nn

from unmix.core.errors import ModelError

_AUTOMATIC_NAME = re.compile(r"^(?:conv2d|batch_normalization)(?:_(\d+))?$")
FINAL_LAYER = "mask"


def copy_keras_weights(network: nn.Module, keras_network: Any) -> None:
    """Copy every convolution and batch norm of `keras_network` into `network` (the same options)."""
    convolutions = _keras_layers(keras_network, "Conv2D")
    norms = _keras_layers(keras_network, "BatchNormalization")
    torch_convolutions = [layer for layer in network.modules() if isinstance(layer, nn.Conv2d)]
    torch_norms = [layer for layer in network.modules() if isinstance(layer, nn.BatchNorm2d)]
    if len(convolutions) != len(torch_convolutions) or len(norms) != len(torch_norms):
        raise ModelError(
            f"the Keras network has {len(convolutions)} convolutions and {len(norms)} batch norms, the torch one "
            f"{len(torch_convolutions)} and {len(torch_norms)}: build both with the same training.model.options"
        )
    with torch.no_grad():
        for source, target in zip(convolutions, torch_convolutions, strict=True):
            kernel, bias = source.get_weights()
            # Keras kernels are (height, width, in, out); PyTorch's (out, in, height, width).
            _assign(target.weight, np.transpose(kernel, (3, 2, 0, 1)), source.name)
            _assign(target.bias, bias, source.name)
        for source, target in zip(norms, torch_norms, strict=True):
            gamma, beta, mean, variance = source.get_weights()
            for tensor, value in ((target.weight, gamma), (target.bias, beta), (target.running_mean, mean),
                                  (target.running_var, variance)):
                _assign(tensor, value, source.name)
            target.eps = float(getattr(source, "epsilon", target.eps))


def _keras_layers(keras_network: Any, kind: str) -> list[Any]:
    layers = [layer for layer in keras_network.layers if type(layer).__name__ == kind]
    return sorted(layers, key=_creation_order)


def _creation_order(layer: Any) -> float:
    if layer.name == FINAL_LAYER:
        return float("inf")
    match = _AUTOMATIC_NAME.match(layer.name)
    if match is None:
        raise ModelError(
            f"Keras layer '{layer.name}' has no automatic name, so the order it was created in is unknown: "
            "copy weights only from hourglasses built by unmix-tf"
        )
    return float(match.group(1) or 0)


def _assign(tensor: torch.Tensor, value: np.ndarray, name: str) -> None:
    if tuple(tensor.shape) != tuple(value.shape):
        raise ModelError(
            f"Keras layer '{name}' holds weights of shape {tuple(value.shape)} where the torch network has "
            f"{tuple(tensor.shape)}: build both with the same training.model.options and input shape"
        )
    tensor.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))
