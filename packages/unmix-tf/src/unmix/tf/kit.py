"""The Keras model kit: a model plugin supplies a Keras network, the kit does the rest.

```python
from unmix.core import Option, hookimpl
from unmix.tf import kit

@hookimpl
def register_models(register):
    kit.register_network(register, "my-mask", "my_plugin.network:build_my_mask",
                         options=[Option("filters", 64, "filters per convolution", minimum=1)])
```

The network is built as `factory(options, input_shape)` (plus the transform's `step` as a third
argument for a network registered with `predicts_step=True`), with every declared option filled
in and `input_shape` = (bins, frames, channels). It returns a `keras.Model` taking float32
(batch, bins, frames, channels) and returning (batch, bins, output frames, channels): masks or
magnitudes, as the configuration's transformation expects (docs/plugins.md has the table).
Everything else comes with registration, for every network alike, unmix's own included: the
training step, losses and metrics by configuration name, optimisers and learning-rate changes,
mixed precision, `.keras` checkpoints with optimiser state for an exact resume, the summary with
parameter counts, tf.distribute (`training.distribution`) and the device. Registering imports no
TensorFlow: give the network as "module:name" and it is imported when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from unmix.core.config.schema import Configuration
from unmix.core.errors import UnmixError
from unmix.core.hookspecs import Register
from unmix.core.models.networks import NetworkFactory, NetworkModel
from unmix.core.models.options import Option, OptionsCheck

BACKEND = "tensorflow"
FRAMEWORK_MODULES = ("tensorflow", "keras")
INSTALL_TENSORFLOW = "pip install 'unmix-tf[cpu]' (or 'unmix-tf[gpu]' for the CUDA build)"

__all__ = ["BACKEND", "KerasNetworkModel", "Option", "register_network"]


@attrs.frozen
class KerasNetworkModel(NetworkModel):
    """The `ModelBuilder` the kit registers: builds a `KerasSeparationModel` around the network."""

    backend = BACKEND
    kinds = ("spectrogram",)

    predicts_step: bool = False
    """Whether the network outputs only the centre `transformation.options.step` frames of a window."""

    def __call__(self, settings: Configuration, input_shape: tuple[int, int, int]) -> Any:
        options = self.read_options(settings.training.model.options, input_shape)
        build_model, factory = self._import_framework()
        if self.predicts_step:
            step = settings.transformation.options.step
            return build_model(self.name, settings, input_shape,
                               lambda chosen, shape: factory(chosen, shape, step), options)
        return build_model(self.name, settings, input_shape, factory, options)

    def _import_framework(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The first import of Keras and TensorFlow, where a missing TensorFlow shows.

        unmix-tf installs Keras but leaves TensorFlow to an extra (CPU or CUDA build), so a plain
        `pip install unmix-tf` gets this far and would die in a long traceback from inside Keras.
        """
        try:
            from unmix.tf.model import build_model

            factory = self.network_factory()
        except ImportError as error:
            if (error.name or "").partition(".")[0] not in FRAMEWORK_MODULES:
                raise
            raise UnmixError(f"training.backend 'tensorflow' needs {error.name}, which is not installed; "
                             f"{INSTALL_TENSORFLOW}") from None
        return build_model, factory


def register_network(register: Register, name: str, network: str | NetworkFactory, *,
                     options: Sequence[Option] = (), check: OptionsCheck | None = None,
                     predicts_step: bool = False) -> None:
    """Register `network` as model "tensorflow:<name>" (picked with `training.model.name: "<name>"`;
    tensorflow is the default `training.backend`).

    :param register: the callback a `register_models` hook receives.
    :param name: the model name configurations use.
    :param network: `factory(options, input_shape) -> keras.Model`, or its place "module:name".
    :param options: the options the network takes; `mixed_precision` is added for every network.
    :param check: optional `check(options, input_shape)` for combinations a single option cannot
        check; raise `unmix.core.ModelError` with one line.
    :param predicts_step: the network outputs the centre `transformation.options.step` frames of
        each window and its factory takes that step as a third argument.
    """
    register(f"{BACKEND}:{name}", KerasNetworkModel(name, network, tuple(options), check, predicts_step))
