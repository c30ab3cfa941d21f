"""The hourglass's options, shared by every backend that builds it (unmix-tf, unmix-torch).

One place checks `training.model.options` for the hourglass, so the same configuration gets the
same defaults, limits and messages whichever framework builds the network, and a backend only
has to build layers. The option names are the seed's; `initial_convolutions.filters` and
`hg_module_end.filters` are unmix's: the seed fixed the widths of the full-resolution front and
head, which cost most of the network's FLOPs (115 of 194 GFLOP per window in the splitstrument
network), and making them options lets a small hourglass of the same architecture train on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unmix.core.errors import ModelError
from unmix.core.models.options import PREFIX, check_range, read_options

SEED_FRONT_FILTERS = [64, 128, 128, 128, 256]
SEED_HEAD_FILTERS = 256
FRONT_KERNELS = (7, 3, 3, 3, 3)

DEFAULTS: dict[str, Any] = {
    "stacks": 4,
    "channels": 128,
    "classes": 2,
    "initial_convolutions": {"filters": SEED_FRONT_FILTERS, "batchnormalization": False, "dropoutfactor": 0.0},
    "hg_module": {"filters": 256, "batchnormalization": False, "dropoutfactor": 0.0},
    "hg_module_end": {"filters": SEED_HEAD_FILTERS, "batchnormalization": False, "dropoutfactor": 0.0},
}


def read_hourglass_options(options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> dict[str, Any]:
    """The options with defaults filled in, after every check; `input_shape` is (bins, frames, channels)."""
    options = read_options("hourglass", options, DEFAULTS)
    check_range("stacks", options["stacks"], 1)
    check_range("hg_module.filters", options["hg_module"]["filters"], 1)
    check_range("hg_module_end.filters", options["hg_module_end"]["filters"], 1)
    front = options["initial_convolutions"]["filters"]
    if (not isinstance(front, list) or len(front) != len(SEED_FRONT_FILTERS)
            or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in front)):
        raise ModelError(f"{PREFIX}.initial_convolutions.filters must list {len(SEED_FRONT_FILTERS)} positive "
                         f"whole numbers (the seed's: {SEED_FRONT_FILTERS}), not {front!r}")
    for group in ("initial_convolutions", "hg_module", "hg_module_end"):
        check_range(f"{group}.dropoutfactor", options[group]["dropoutfactor"], 0.0, below=1.0)
    bins, frames, _channels = input_shape
    check_fits(options["stacks"], bins, frames)
    return options


def check_fits(stacks: int, bins: int, frames: int) -> None:
    """The module halves height and width `stacks` times and adds the halves back, so both must divide evenly."""
    factor = 2**stacks
    height = bins - 1
    if height < factor or height % factor:
        fft_length = 2 * height
        raise ModelError(
            f"model 'hourglass' with stacks {stacks} halves the spectrogram {stacks} times, but its height "
            f"{height} (fft_length {fft_length} / 2, after cropping the DC row) is not a multiple of {factor}: "
            f"use a spectrogram_generation.fft_length that is a multiple of {2 * factor} or fewer stacks"
        )
    if frames < factor or frames % factor:
        raise ModelError(
            f"model 'hourglass' with stacks {stacks} halves the window {stacks} times, but "
            f"transformation.options.size {frames} is not a multiple of {factor}: use a multiple of {factor} "
            "or fewer stacks"
        )
