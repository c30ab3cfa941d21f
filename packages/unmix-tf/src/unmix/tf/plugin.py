"""The entry point that registers the Keras models with unmix.

Loaded by every `unmix` command, including `unmix --help`, so it must not import TensorFlow or
Keras: each name is registered with a small builder that imports its network module only when a
model is actually built.
"""

from __future__ import annotations

import importlib
from typing import Any

import attrs

from unmix.core.config_schema import Configuration
from unmix.core.hookspecs import Register, hookimpl

# Networks whose output is a window of the input's shape: name -> (module, function).
WINDOW_NETWORKS = {
    "hourglass": ("unmix.tf.hourglass", "build_hourglass"),
    "band-hourglass": ("unmix.tf.band_hourglass", "build_band_hourglass"),
    "leakyrelu": ("unmix.tf.seed_models", "build_leakyrelu"),
    "largeleakyrelu": ("unmix.tf.seed_models", "build_largeleakyrelu"),
    "mask-leakyrelu": ("unmix.tf.seed_models", "build_mask_leakyrelu"),
    "unet": ("unmix.tf.seed_models", "build_unet"),
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
        from unmix.tf.model import build_model

        build_network = getattr(importlib.import_module(self.module), self.function)
        if self.predicts_step:
            step = settings.transformation.options.step
            return build_model(
                self.name, settings, input_shape, lambda options, shape: build_network(options, shape, step)
            )
        return build_model(self.name, settings, input_shape, build_network)


@hookimpl
def register_models(register: Register) -> None:
    # Models are registered per backend ("tensorflow:hourglass"); training.backend picks the prefix.
    for name, (module, function) in WINDOW_NETWORKS.items():
        register(f"tensorflow:{name}", KerasModelBuilder(name, module, function))
    for name, (module, function) in FRAME_NETWORKS.items():
        register(f"tensorflow:{name}", KerasModelBuilder(name, module, function, predicts_step=True))
