"""A tiny waveform model plugin for the kit's tests: one 1-D convolution from mix samples to target samples.

Registered in-process by tests/torch/test_waveform_kit.py, and installed as a throwaway distribution
for the `unmix` subprocesses, which cannot see an in-process plugin. It imports no torch until a
model is built, as a real plugin module must not.
"""

from __future__ import annotations

from typing import Any

from unmix.core import ModelError, Option, hookimpl

OPTIONS = [Option("kernel", 9, "samples each output sample looks at (odd)", minimum=1)]


def tiny_waveform(options: dict[str, Any], input_shape: tuple[int, int]) -> Any:
    """(batch, channels, samples) in and out: a convolution across channels and nearby samples."""
    from torch import nn

    channels, _samples = input_shape
    return nn.Conv1d(channels, channels, options["kernel"], padding=options["kernel"] // 2)


def check(options: dict[str, Any], input_shape: tuple[int, ...]) -> None:
    if options["kernel"] % 2 == 0:
        raise ModelError(f"training.model.options.kernel is {options['kernel']}; it must be odd, so that the "
                         "output has the input's length")


@hookimpl
def register_models(register: Any) -> None:
    from unmix.torch import kit

    kit.register_network(register, "tiny-waveform", f"{__name__}:tiny_waveform", options=OPTIONS, check=check,
                         kind="waveform")
