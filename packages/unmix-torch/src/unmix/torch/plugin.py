"""The entry point that registers the PyTorch models and the `unmix train-ddp` command.

Loaded by every `unmix` command, including `unmix --help`, so it must not import torch: each
name is registered with a small builder that imports its network module only when a model is
actually built.

Models are registered per backend, as core expects: "torch:hourglass" is the same network as
the Keras backend's "tensorflow:hourglass", so a configuration switches framework with
`training.backend: "torch"` and keeps `training.model.name: "hourglass"` and all its options.
The hourglass (the seed's production model) and unmix's band hourglass are ported; the seed's other
models stay Keras-only.
"""

from __future__ import annotations

import importlib
from typing import Any

import attrs

from unmix.core.config.schema import Configuration
from unmix.core.hookspecs import Register, hookimpl

BACKEND = "torch"

# Networks whose output is a window of the input's shape: name -> (module, function).
NETWORKS = {
    "hourglass": ("unmix.torch.hourglass", "build_hourglass"),
    "band-hourglass": ("unmix.torch.band_hourglass", "build_band_hourglass"),
}
# Their option readers need no torch, so `unmix config check` and training check a network's options
# before any data is decoded: name -> (module, function).
OPTION_READERS = {
    "hourglass": ("unmix.core.models.hourglass_options", "read_hourglass_options"),
    "band-hourglass": ("unmix.core.models.band_hourglass_options", "read_band_hourglass_options"),
}


@attrs.frozen
class TorchModelBuilder:
    """The `ModelBuilder` registered for one network name."""

    name: str
    module: str
    function: str

    def __call__(self, settings: Configuration, input_shape: tuple[int, int, int]) -> Any:
        from unmix.torch.model import build_model

        build_network = getattr(importlib.import_module(self.module), self.function)
        return build_model(self.name, settings, input_shape, build_network)

    def check_options(self, settings: Configuration, input_shape: tuple[int, int, int]) -> None:
        """Refuse bad `training.model.options` without importing torch (raises ModelError)."""
        module, function = OPTION_READERS[self.name]
        getattr(importlib.import_module(module), function)(settings.training.model.options, input_shape)


@hookimpl
def register_models(register: Register) -> None:
    for name, (module, function) in NETWORKS.items():
        register(f"{BACKEND}:{name}", TorchModelBuilder(name, module, function))


@hookimpl
def register_commands(cli: Any) -> None:
    from unmix.torch.launch import train_ddp

    cli.add_command(train_ddp)
