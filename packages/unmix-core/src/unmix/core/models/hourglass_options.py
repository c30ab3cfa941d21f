"""The hourglass's options, declared once for every backend that builds it (unmix-tf, unmix-torch).

One place declares and checks `training.model.options` for the hourglass, so the same
configuration gets the same defaults, limits and messages whichever framework builds the network,
and a backend only has to build layers. The option names are the original system's;
`initial_convolutions.filters` and `hg_module_end.filters` are unmix's: the original fixed the
widths of the full-resolution front and head, which cost most of the network's FLOPs (115 of 194
GFLOP per window in the splitstrument network), and making them options lets a small hourglass of
the same architecture train on a CPU.
"""

from __future__ import annotations

from typing import Any

from unmix.core.errors import ModelError
from unmix.core.models.options import PREFIX, Option

ORIGINAL_FRONT_FILTERS = [64, 128, 128, 128, 256]
ORIGINAL_HEAD_FILTERS = 256
FRONT_KERNELS = (7, 3, 3, 3, 3)


def _group_options(group: str, filters: Any, what: str) -> list[Option]:
    filters_option = (Option(f"{group}.filters", filters, f"filters of {what}", minimum=1) if isinstance(filters, int)
                      else Option(f"{group}.filters", filters, f"filters of the {len(filters)} convolutions of {what}"))
    return [
        filters_option,
        Option(f"{group}.batchnormalization", False, f"batch normalisation after each convolution of {what}"),
        Option(f"{group}.dropoutfactor", 0.0, f"dropout after each convolution of {what}", minimum=0.0, below=1.0),
    ]


OPTIONS = [
    Option("stacks", 4, "how many times the hourglass module halves the spectrogram and its window", minimum=1),
    Option("channels", 128, "kept from the original configurations, which set it but never read it", minimum=1),
    Option("classes", 2, "kept from the original configurations, which set it but never read it", minimum=1),
    *_group_options("initial_convolutions", ORIGINAL_FRONT_FILTERS, "the full-resolution front"),
    *_group_options("hg_module", 256, "the hourglass module"),
    *_group_options("hg_module_end", ORIGINAL_HEAD_FILTERS, "the head after the module"),
]


def check_hourglass(options: dict[str, Any], input_shape: tuple[int, int, int]) -> None:
    """The front's filter list, and whether the window halves evenly `stacks` times."""
    front = options["initial_convolutions"]["filters"]
    if (not isinstance(front, list) or len(front) != len(ORIGINAL_FRONT_FILTERS)
            or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in front)):
        raise ModelError(f"{PREFIX}.initial_convolutions.filters must list {len(ORIGINAL_FRONT_FILTERS)} positive "
                         f"whole numbers (the original's: {ORIGINAL_FRONT_FILTERS}), not {front!r}")
    bins, frames, _channels = input_shape
    check_fits(options["stacks"], bins, frames)


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
