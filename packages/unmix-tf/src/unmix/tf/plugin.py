"""The entry point that registers the Keras models with unmix.

Loaded by every `unmix` command, including `unmix --help`, so it must not import TensorFlow or
Keras: each name is registered with a small builder that imports its network module only when a
model is actually built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import attrs

from unmix.core.config.schema import Configuration
from unmix.core.errors import UnmixError
from unmix.core.hookspecs import Register, hookimpl

FRAMEWORK_MODULES = ("tensorflow", "keras")
INSTALL_TENSORFLOW = "pip install 'unmix-tf[cpu]' (or 'unmix-tf[gpu]' for the CUDA build)"

# Networks whose output is a window of the input's shape: name -> (module, function).
WINDOW_NETWORKS = {
    "hourglass": ("unmix.tf.hourglass", "build_hourglass"),
    "band-hourglass": ("unmix.tf.band_hourglass", "build_band_hourglass"),
    "leakyrelu": ("unmix.tf.seed_models", "build_leakyrelu"),
    "largeleakyrelu": ("unmix.tf.seed_models", "build_largeleakyrelu"),
    "mask-leakyrelu": ("unmix.tf.seed_models", "build_mask_leakyrelu"),
    "unet": ("unmix.tf.seed_models", "build_unet"),
}
# Option readers that need no framework, so `unmix config check` and training can check a network's
# options before any data is decoded: name -> (module, function). The seed's other networks read
# theirs while they are built.
OPTION_READERS = {
    "hourglass": ("unmix.core.models.hourglass_options", "read_hourglass_options"),
    "band-hourglass": ("unmix.core.models.band_hourglass_options", "read_band_hourglass_options"),
}
# Networks that predict only the centre transformation.options.step frames of each window.
FRAME_NETWORKS = {
    "mask": ("unmix.tf.seed_models", "build_mask"),
    "mask-ibm": ("unmix.tf.seed_models", "build_mask_ibm"),
    "rnn": ("unmix.tf.seed_models", "build_rnn"),
}


@attrs.frozen
class KerasModelBuilder:
    """The `ModelBuilder` registered for one network name."""

    name: str
    module: str
    function: str
    predicts_step: bool = False

    def __call__(self, settings: Configuration, input_shape: tuple[int, int, int]) -> Any:
        build_model, build_network = self._import_builders()
        if self.predicts_step:
            step = settings.transformation.options.step
            return build_model(
                self.name, settings, input_shape, lambda options, shape: build_network(options, shape, step)
            )
        return build_model(self.name, settings, input_shape, build_network)

    def check_options(self, settings: Configuration, input_shape: tuple[int, int, int]) -> None:
        """Refuse bad `training.model.options` without importing Keras (raises ModelError)."""
        if self.name in OPTION_READERS:
            module, function = OPTION_READERS[self.name]
            getattr(importlib.import_module(module), function)(settings.training.model.options, input_shape)

    def _import_builders(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The first import of Keras and TensorFlow, where a missing TensorFlow shows.

        unmix-tf installs Keras but leaves TensorFlow to an extra (CPU or CUDA build), so a plain
        `pip install unmix-tf` gets this far and would die in a long traceback from inside Keras.
        """
        try:
            from unmix.tf.model import build_model

            network_module = importlib.import_module(self.module)
        except ImportError as error:
            if (error.name or "").partition(".")[0] not in FRAMEWORK_MODULES:
                raise
            raise UnmixError(f"training.backend 'tensorflow' needs {error.name}, which is not installed; "
                             f"{INSTALL_TENSORFLOW}") from None
        return build_model, getattr(network_module, self.function)


@hookimpl
def register_models(register: Register) -> None:
    # Models are registered per backend ("tensorflow:hourglass"); training.backend picks the prefix.
    for name, (module, function) in WINDOW_NETWORKS.items():
        register(f"tensorflow:{name}", KerasModelBuilder(name, module, function))
    for name, (module, function) in FRAME_NETWORKS.items():
        register(f"tensorflow:{name}", KerasModelBuilder(name, module, function, predicts_step=True))
