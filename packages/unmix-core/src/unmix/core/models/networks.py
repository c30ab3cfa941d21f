"""`NetworkModel`: what each backend's model kit registers for one network.

A model plugin supplies a network (a `torch.nn.Module` or a Keras model, built from its options
and the window shape) and declares its options; the backend's kit (`unmix.torch.kit`,
`unmix.tf.kit`) supplies everything else. This base holds the part that needs no framework, so
`unmix models`, `unmix config check` and `unmix config show` read and check a model's options
without importing TensorFlow or PyTorch.

A network is of one of two kinds: "spectrogram" networks take windows of STFT magnitudes,
(bins, frames, channels), and return masks or magnitudes; "waveform" networks take chunks of
samples, (channels, samples), and return the target's samples. The transform decides what a
model is handed (`transformation.name: "waveform"` hands chunks), so the shape it gives tells
the kind apart (`input_kind`), and a network of the other kind is refused in one line before any
data is read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from unmix.core.config.schema import Configuration
from unmix.core.errors import ModelError, PluginError
from unmix.core.models.losses import check_loss_fits_kind
from unmix.core.models.options import MIXED_PRECISION, Option, OptionsCheck, read_declared_options

NetworkFactory = Callable[[dict[str, Any], tuple[int, ...]], Any]
"""`factory(options, input_shape)`: the network for windows of (bins, frames, channels), or for a
waveform network chunks of (channels, samples), with every declared option filled in (its default
where the configuration does not set it)."""

KINDS = ("spectrogram", "waveform")


def input_kind(input_shape: Sequence[int]) -> str:
    """The kind of network an input shape is for: (channels, samples) chunks are "waveform"'s,
    (bins, frames, channels) windows "spectrogram"'s."""
    return "waveform" if len(input_shape) == 2 else "spectrogram"


def _known_kind(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in KINDS:
        raise PluginError(f"model '{instance.name}' is registered with kind {value!r}; it must be "
                          f"{' or '.join(repr(kind) for kind in KINDS)}; fix the plugin's registration")


@attrs.frozen
class NetworkModel:
    """A network registered through a kit: its name, where to find it, and its declared options.

    `network` is the factory itself or, so that registering imports no framework, its place as
    "package.module:name"; it is imported only when a model is built. `kind` is what the network
    takes and returns (see the module docstring); `kinds` are the kinds the backend's kit trains.
    """

    backend: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = KINDS

    name: str
    network: str | NetworkFactory
    options: tuple[Option, ...] = attrs.field(default=(), converter=tuple)
    check: OptionsCheck | None = None
    kind: str = attrs.field(default="spectrogram", kw_only=True, validator=_known_kind)

    @property
    def declared_options(self) -> tuple[Option, ...]:
        """The network's options and the one every model has (`mixed_precision`)."""
        return (*self.options, MIXED_PRECISION)

    def read_options(self, given: Mapping[str, Any], input_shape: Sequence[int]) -> dict[str, Any]:
        """`training.model.options` with defaults filled in, after every check (raises ModelError)."""
        shape = tuple(int(size) for size in input_shape)
        self.check_input_kind(shape)
        return read_declared_options(self.name, self.declared_options, given, shape, self.check)

    def check_options(self, settings: Configuration, input_shape: tuple[int, ...]) -> None:
        """What `unmix config check` asks before any data is decoded: the options, and that the
        transform and the loss suit the network's kind."""
        self.read_options(settings.training.model.options, input_shape)
        check_loss_fits_kind(settings.training.loss_function, f"{self.backend}:{self.name}", self.kind)

    def check_input_kind(self, input_shape: tuple[int, ...]) -> None:
        """Refuse, in one line, a transform that hands this network the other kind of input."""
        given = input_kind(input_shape)
        if given == self.kind:
            return
        if given not in self.kinds:
            raise ModelError(f"transformation.name \"{given}\" needs a {given} network, but training.backend "
                             f"'{self.backend}' trains none; choose a backend and training.model.name whose kind is "
                             f"{given} (`unmix models` shows each model's kind)")
        model = f"'{self.backend}:{self.name}'"
        if given == "waveform":
            raise ModelError(f"training.model.name {model} is a spectrogram network, but transformation.name "
                             f"\"waveform\" hands it sample chunks (channels, samples) = {input_shape}; use a "
                             "spectrogram transformation such as \"train_window_predict_mask\", or a waveform model "
                             "(`unmix models` shows each model's kind)")
        raise ModelError(f"training.model.name {model} is a waveform network, but the transformation hands it "
                         f"spectrogram windows (bins, frames, channels) = {input_shape}; set transformation.name "
                         "to \"waveform\"")

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
