"""The entry point that registers the PyTorch models and the `unmix train-ddp` and `unmix import msst` commands.

Loaded by every `unmix` command, including `unmix --help`, so it must not import torch: the
networks are registered through the public model kit (`unmix.torch.kit`) by "module:name", as
any third-party model plugin registers its own, and imported only when a model is built.

Models are registered per backend, as core expects: "torch:hourglass" is the same network as
the Keras backend's "tensorflow:hourglass", with the same declared options, so a configuration
switches framework with `training.backend: "torch"` and keeps `training.model.name: "hourglass"`
and all its options. The hourglass (the original system's production model) and unmix's band
hourglass are ported; the original's other models stay Keras-only.
"""

from __future__ import annotations

from typing import Any

from unmix.core.hookspecs import Register, hookimpl
from unmix.core.models import band_hourglass_options, hourglass_options
from unmix.torch import kit, roformer_options


@hookimpl
def register_models(register: Register) -> None:
    kit.register_network(register, "hourglass", "unmix.torch.hourglass:Hourglass",
                         options=hourglass_options.OPTIONS, check=hourglass_options.check_hourglass)
    kit.register_network(register, "band-hourglass", "unmix.torch.band_hourglass:BandHourglass",
                         options=band_hourglass_options.OPTIONS, check=band_hourglass_options.check_band_hourglass)
    kit.register_network(register, "bs-roformer", "unmix.torch.roformer:BSRoformer", kind="waveform",
                         options=roformer_options.BS_ROFORMER_OPTIONS, check=roformer_options.check_bs_roformer)
    kit.register_network(register, "mel-roformer", "unmix.torch.roformer:MelBandRoformer", kind="waveform",
                         options=roformer_options.MEL_ROFORMER_OPTIONS, check=roformer_options.check_mel_roformer)


@hookimpl
def register_commands(cli: Any) -> None:
    from unmix.torch.launch import train_ddp
    from unmix.torch.msst import import_group

    cli.add_command(train_ddp)
    cli.add_command(import_group)
