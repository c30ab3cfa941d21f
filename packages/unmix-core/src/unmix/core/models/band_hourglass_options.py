"""The band hourglass's options, declared once for every backend that builds it (unmix-tf, unmix-torch).

The band hourglass is unmix's CPU-first model (docs/models.md): the original hourglass spends most
of its 194 GFLOP per window convolving the full-resolution spectrogram, so this one first folds
each frame's bins into a few hundred learned band features, runs the hourglass (pool, convolve,
upsample, add) along time only, and learns the way back to one mask value per bin. One place
declares the options and checks so both frameworks build the same network from the same options.
"""

from __future__ import annotations

from typing import Any

from unmix.core.errors import ModelError
from unmix.core.models.options import PREFIX, Option

OPTIONS = [
    Option("bands", 256, "learned band features each frame's bins are folded into", minimum=1),
    Option("stacks", 3, "how many times the hourglass halves the window along time", minimum=1),
    Option("filters", 256, "filters of the hourglass's 1-D convolutions", minimum=1),
    Option("kernel_size", 3, "frames each convolution sees (odd, so its output is centred)", minimum=1),
    Option("dropoutfactor", 0.0, "dropout after each convolution", minimum=0.0, below=1.0),
]


def check_band_hourglass(options: dict[str, Any], input_shape: tuple[int, int, int]) -> None:
    """An odd kernel, and a window that halves evenly `stacks` times."""
    if options["kernel_size"] % 2 == 0:
        raise ModelError(f"{PREFIX}.kernel_size is {options['kernel_size']}; it must be odd so "
                         "each frame's output is centred on it")
    frames = input_shape[1]
    factor = 2 ** options["stacks"]
    if frames < factor or frames % factor:
        raise ModelError(
            f"model 'band-hourglass' with stacks {options['stacks']} halves the window {options['stacks']} times, "
            f"but transformation.options.size {frames} is not a multiple of {factor}: use a multiple of {factor} "
            "or fewer stacks"
        )
