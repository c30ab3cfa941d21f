"""Model options: declared once by the model, checked the same way for every backend.

The configuration schema keeps `training.model.options` as a free dictionary because each model
has its own. A model declares its options as a list of `Option`s (name, default, range, one-line
help); from that one list come the defaults, the checks (unknown keys with a did-you-mean, wrong
types and out-of-range values as one-line errors naming the key), `unmix models` and the options
`unmix config show` fills in. Every backend uses it, so a configuration gets the same message
whichever framework reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from unmix.core.errors import ModelError, did_you_mean

PREFIX = "training.model.options"

OptionsCheck = Callable[[dict[str, Any], tuple[int, int, int]], None]
"""A model's own check of option combinations against the window shape (bins, frames, channels):
raises `ModelError` when, say, a window cannot be halved as often as the options ask."""


@attrs.frozen
class Option:
    """One option of a model, as `training.model.options` sets it.

    `name` may be dotted ("hg_module.filters") for options grouped in an object. The type of
    `default` is the type a value must have (a whole number for an int default, true/false for a
    bool, any number for a float); `minimum` and `below` bound numbers (`minimum <= value < below`),
    `choices` lists the allowed values. `help` is the one line `unmix models` shows.
    """

    name: str
    default: Any
    help: str
    minimum: float | None = None
    below: float | None = None
    choices: tuple[Any, ...] | None = attrs.field(default=None, converter=attrs.converters.optional(tuple))

    def check(self, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(choice) for choice in self.choices)
            raise ModelError(f"{PREFIX}.{self.name} is {value!r}; it must be one of {allowed}")
        if self.minimum is not None or self.below is not None:
            check_range(self.name, value, self.minimum, self.below)

    def describe(self) -> str:
        """`name = default`, its bounds and its help, as `unmix models` lists it."""
        bounds = []
        if self.minimum is not None:
            bounds.append(f">= {self.minimum:g}")
        if self.below is not None:
            bounds.append(f"< {self.below:g}")
        if self.choices is not None:
            bounds.append("one of " + ", ".join(repr(choice) for choice in self.choices))
        limits = f" ({', '.join(bounds)})" if bounds else ""
        return f"{self.name} = {_json_like(self.default)}{limits}: {self.help}"


MIXED_PRECISION = Option(
    "mixed_precision", False,
    "compute in a 16-bit float type with float32 weights: float16 on a GPU, bfloat16 on a CPU that has it",
)
"""The option every model has: the backend reads it, not the network."""


def option_defaults(declared: Sequence[Option]) -> dict[str, Any]:
    """The defaults of `declared` as the nested object `training.model.options` would hold."""
    defaults: dict[str, Any] = {}
    for option in declared:
        *groups, key = option.name.split(".")
        level = defaults
        for group in groups:
            level = level.setdefault(group, {})
        level[key] = option.default
    return defaults


def read_declared_options(model: str, declared: Sequence[Option], given: Mapping[str, Any],
                          input_shape: tuple[int, int, int], check: OptionsCheck | None = None) -> dict[str, Any]:
    """`given` over the declared defaults, after every check: types, ranges, choices, then the model's own."""
    options = read_options(model, given, option_defaults(declared))
    for option in declared:
        option.check(_lookup(options, option.name))
    if check is not None:
        check(options, tuple(int(size) for size in input_shape))
    return options


def _lookup(options: Mapping[str, Any], dotted: str) -> Any:
    value: Any = options
    for key in dotted.split("."):
        value = value[key]
    return value


def _json_like(value: Any) -> str:
    """Defaults as a configuration file writes them (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def read_options(model: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`defaults` overlaid with `given`; the type of each default is the type the option must have."""
    return _merge(model, given, defaults, PREFIX)


def check_range(key: str, value: float, minimum: float | None, below: float | None = None) -> None:
    """Refuse `value` outside [minimum, below); `key` is the dotted path under training.model.options."""
    if (minimum is not None and value < minimum) or (below is not None and value >= below):
        limits = [f"at least {minimum}"] if minimum is not None else []
        limits += [f"below {below}"] if below is not None else []
        raise ModelError(f"{PREFIX}.{key} is {value}; it must be {' and '.join(limits)}")


def _merge(model: str, given: Mapping[str, Any], defaults: Mapping[str, Any], path: str) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise ModelError(f"{path} must be an object {{...}} for model '{model}', not {type(given).__name__}")
    merged = dict(defaults)
    for key, value in given.items():
        key_path = f"{path}.{key}"
        if key not in defaults:
            if not defaults:
                raise ModelError(f"{key_path}: model '{model}' takes no options; remove '{key}'")
            hint = did_you_mean(key, defaults)
            known = ", ".join(sorted(defaults))
            raise ModelError(f"{key_path}: model '{model}' has no option '{key}'{hint}; its options are: {known}")
        default = defaults[key]
        if isinstance(default, Mapping):
            merged[key] = _merge(model, value, default, key_path)
        else:
            merged[key] = _convert(value, default, key_path)
    return merged


def _convert(value: Any, default: Any, key_path: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ModelError(f"{key_path} must be true or false, not {value!r}")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        if is_number and float(value).is_integer():
            return int(value)
        raise ModelError(f"{key_path} must be a whole number, not {value!r}")
    if isinstance(default, float):
        if is_number:
            return float(value)
        raise ModelError(f"{key_path} must be a number, not {value!r}")
    return value


def check_checkpoint_fits(path: Path, saved: Mapping[str, Any], mine: Mapping[str, Any]) -> None:
    """Name the setting that changed between a checkpoint and the model loading it, before the framework
    reports a mismatch layer by layer. Both descriptions hold `model`, `input_shape` and `weight_shapes`."""
    if saved.get("model") != mine["model"]:
        raise ModelError(f"checkpoint '{path}' holds a '{saved.get('model')}' model, not '{mine['model']}'")
    if saved.get("input_shape") != mine["input_shape"]:
        trained_on = tuple(saved.get("input_shape", ()))
        raise ModelError(
            f"checkpoint '{path}' was trained on windows of {trained_on}, this model takes "
            f"{tuple(mine['input_shape'])}: spectrogram_generation.fft_length, transformation.options.size or "
            "collection.stereo differ"
        )
    if saved.get("weight_shapes") != mine["weight_shapes"]:
        raise ModelError(
            f"checkpoint '{path}' does not fit this '{mine['model']}': its weights have other shapes, so "
            "training.model.options differ from the ones it was trained with"
        )
