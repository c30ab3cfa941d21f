"""The band hourglass's options, shared by every backend that builds it (unmix-tf, unmix-torch).

The band hourglass is unmix's CPU-first model (docs/models.md): the seed's hourglass spends most
of its 194 GFLOP per window convolving the full-resolution spectrogram, so this one first folds
each frame's bins into a few hundred learned band features, runs the hourglass (pool, convolve,
upsample, add) along time only, and learns the way back to one mask value per bin. One place
holds the defaults and checks so both frameworks build the same network from the same options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unmix.core.errors import ModelError
from unmix.core.models.options import check_range, read_options

DEFAULTS: dict[str, Any] = {
    "bands": 256,
    "stacks": 3,
    "filters": 256,
    "kernel_size": 3,
    "dropoutfactor": 0.0,
}


def read_band_hourglass_options(options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> dict[str, Any]:
    """The options with defaults filled in, after every check; `input_shape` is (bins, frames, channels)."""
    options = read_options("band-hourglass", options, DEFAULTS)
    check_range("bands", options["bands"], 1)
    check_range("stacks", options["stacks"], 1)
    check_range("filters", options["filters"], 1)
    check_range("kernel_size", options["kernel_size"], 1)
    check_range("dropoutfactor", options["dropoutfactor"], 0.0, below=1.0)
    if options["kernel_size"] % 2 == 0:
        raise ModelError(f"training.model.options.kernel_size is {options['kernel_size']}; it must be odd so "
                         "each frame's output is centred on it")
    frames = input_shape[1]
    factor = 2 ** options["stacks"]
    if frames < factor or frames % factor:
        raise ModelError(
            f"model 'band-hourglass' with stacks {options['stacks']} halves the window {options['stacks']} times, "
            f"but transformation.options.size {frames} is not a multiple of {factor}: use a multiple of {factor} "
            "or fewer stacks"
        )
    return options
