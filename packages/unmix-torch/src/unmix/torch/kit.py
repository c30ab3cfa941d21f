"""The PyTorch model kit: a model plugin supplies a `torch.nn.Module`, the kit does the rest.

```python
from unmix.core import Option, hookimpl
from unmix.torch import kit

@hookimpl
def register_models(register):
    kit.register_network(register, "blstm", "my_plugin.network:BLSTM",
                         options=[Option("hidden_size", 256, "LSTM width per direction", minimum=1)])
```

The network is built as `factory(options, input_shape)` with every declared option filled in and
`input_shape` = (bins, frames, channels) of the transform's windows. Its forward pass takes a
float32 tensor (batch, channels, bins, frames) and returns (batch, channels, bins, output frames):
masks or magnitudes, as the configuration's transformation expects (docs/plugins.md has the
table). A waveform network (`kind="waveform"`) is built with `input_shape` = (channels, samples)
of the chunks and maps float32 (batch, channels, samples) to the target's samples of the same
shape. Everything else comes with registration, for every network alike, unmix's own included:
the training step, losses and metrics by configuration name, optimisers and learning-rate
changes, mixed precision (float16 on a GPU, bfloat16 on a CPU that has it), checkpoints holding
weights and optimiser state for an exact resume, the summary with parameter counts, DDP
(`unmix train-ddp`) and the choice of device. Registering imports no torch: give the network as
"module:name" and it is imported when a model is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from unmix.core.config.schema import Configuration
from unmix.core.hookspecs import Register
from unmix.core.models.networks import NetworkFactory, NetworkModel
from unmix.core.models.options import Option, OptionsCheck

BACKEND = "torch"

__all__ = ["BACKEND", "Option", "TorchNetworkModel", "register_network"]


@attrs.frozen
class TorchNetworkModel(NetworkModel):
    """The `ModelBuilder` the kit registers: builds a `TorchSeparationModel` around the network."""

    backend = BACKEND

    def __call__(self, settings: Configuration, input_shape: tuple[int, int, int]) -> Any:
        from unmix.torch.model import build_model

        options = self.read_options(settings.training.model.options, input_shape)
        return build_model(self.name, settings, input_shape, self.network_factory(), options)


def register_network(register: Register, name: str, network: str | NetworkFactory, *,
                     options: Sequence[Option] = (), check: OptionsCheck | None = None,
                     kind: str = "spectrogram") -> None:
    """Register `network` as model "torch:<name>" (a configuration picks it with `training.backend: "torch"`
    and `training.model.name: "<name>"`).

    :param register: the callback a `register_models` hook receives.
    :param name: the model name configurations use.
    :param network: `factory(options, input_shape) -> torch.nn.Module`, or its place "module:name".
    :param options: the options the network takes; `mixed_precision` is added for every network.
    :param check: optional `check(options, input_shape)` for combinations a single option cannot
        check (a window that must halve evenly, say); raise `unmix.core.ModelError` with one line.
    :param kind: "spectrogram" (STFT windows in, masks or magnitudes out) or "waveform" (sample
        chunks in, the target's samples out; configurations then set `transformation.name: "waveform"`).
    """
    register(f"{BACKEND}:{name}", TorchNetworkModel(name, network, tuple(options), check, kind=kind))
