"""The entry point (`[project.entry-points.unmix]` in pyproject.toml): registers "torch:blstm".

Every `unmix` command imports this module, `unmix --help` included, so it imports no torch: the
network is named as "module:Class" and the kit imports it only when a model is built.
"""

from __future__ import annotations

from typing import Any

from unmix.core import ModelError, Option, Register, hookimpl
from unmix.torch import kit

OPTIONS = [
    Option("hidden_size", 128, "features per frame; the LSTM has half of them per direction (Open-Unmix: 512)",
           minimum=2),
    Option("layers", 3, "stacked bidirectional LSTM layers", minimum=1),
    Option("dropout", 0.4, "dropout between LSTM layers (none with one layer)", minimum=0.0, below=1.0),
    Option("max_bin", 0, "feed only the lowest max_bin bins to the network (0: all); masks cover every bin",
           minimum=0),
]


def check(options: dict[str, Any], input_shape: tuple[int, int, int]) -> None:
    """The combinations one option cannot check: an even width, and max_bin within the window."""
    if options["hidden_size"] % 2:
        raise ModelError(f"training.model.options.hidden_size is {options['hidden_size']}; it must be even "
                         "(half of it runs in each direction of the LSTM)")
    if options["max_bin"] > input_shape[0]:
        raise ModelError(f"training.model.options.max_bin is {options['max_bin']}, but windows have only "
                         f"{input_shape[0]} bins (spectrogram_generation.fft_length / 2 + 1)")


@hookimpl
def register_models(register: Register) -> None:
    kit.register_network(register, "blstm", "unmix_example_blstm.model:BLSTM", options=OPTIONS, check=check)
