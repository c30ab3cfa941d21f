"""`NetworkModel`: what each backend's model kit registers for one network.

A model plugin supplies a network (a `torch.nn.Module` or a Keras model, built from its options
and the window shape) and declares its options; the backend's kit (`unmix.torch.kit`,
`unmix.tf.kit`) supplies everything else. This base holds the part that needs no framework, so
`unmix models`, `unmix config check` and `unmix config show` read and check a model's options
without importing TensorFlow or PyTorch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from unmix.core.config.schema import Configuration
from unmix.core.errors import PluginError
from unmix.core.models.options import MIXED_PRECISION, Option, OptionsCheck, read_declared_options

NetworkFactory = Callable[[dict[str, Any], tuple[int, int, int]], Any]
"""`factory(options, input_shape)`: the network for windows of (bins, frames, channels), with every
declared option filled in (its default where the configuration does not set it)."""


@attrs.frozen
class NetworkModel:
    """A network registered through a kit: its name, where to find it, and its declared options.

    `network` is the factory itself or, so that registering imports no framework, its place as
    "package.module:name"; it is imported only when a model is built.
    """

    backend: ClassVar[str] = ""

    name: str
    network: str | NetworkFactory
    options: tuple[Option, ...] = attrs.field(default=(), converter=tuple)
    check: OptionsCheck | None = None

    @property
    def declared_options(self) -> tuple[Option, ...]:
        """The network's options and the one every model has (`mixed_precision`)."""
        return (*self.options, MIXED_PRECISION)

    def read_options(self, given: Mapping[str, Any], input_shape: Sequence[int]) -> dict[str, Any]:
        """`training.model.options` with defaults filled in, after every check (raises ModelError)."""
        shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
        return read_declared_options(self.name, self.declared_options, given, shape, self.check)

    def check_options(self, settings: Configuration, input_shape: tuple[int, int, int]) -> None:
        """What `unmix config check` asks before any data is decoded."""
        self.read_options(settings.training.model.options, input_shape)

    def network_factory(self) -> NetworkFactory:
        """The factory, imported now if it was given as "module:name"."""
        if callable(self.network):
            return self.network
        module_name, _, attribute = self.network.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute, None)
        if not callable(factory):
            raise PluginError(f"model '{self.backend}:{self.name}' names its network '{self.network}', but "
                              f"module '{module_name}' has no callable '{attribute}'; fix the plugin's registration")
        return factory
