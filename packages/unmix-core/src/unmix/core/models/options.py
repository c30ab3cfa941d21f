"""Checks `training.model.options` against the options a network knows.

The configuration schema keeps model options as a free dictionary because each model has its
own; this module gives them the same treatment the schema gives every other key: unknown keys
(with a did-you-mean), wrong types and out-of-range values are one-line errors naming the key.
Every backend uses it, so a configuration gets the same message whichever framework reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unmix.core.errors import ModelError, did_you_mean

PREFIX = "training.model.options"


def read_options(model: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`defaults` overlaid with `given`; the type of each default is the type the option must have."""
    return _merge(model, given, defaults, PREFIX)


def check_range(key: str, value: float, minimum: float, below: float | None = None) -> None:
    """Refuse `value` outside [minimum, below); `key` is the dotted path under training.model.options."""
    if value < minimum or (below is not None and value >= below):
        upper = f" and below {below}" if below is not None else ""
        raise ModelError(f"{PREFIX}.{key} is {value}; it must be at least {minimum}{upper}")


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
