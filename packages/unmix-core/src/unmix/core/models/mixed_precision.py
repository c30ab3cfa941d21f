"""`training.model.options.mixed_precision`: the one option every backend reads itself, not its network."""

from __future__ import annotations

from typing import Any

from unmix.core.errors import ModelError


def take_mixed_precision(options: dict[str, Any]) -> bool:
    """Remove the switch from `options` (the network builders do not know it) and return it, checked."""
    mixed_precision = options.pop("mixed_precision", False)
    if not isinstance(mixed_precision, bool):
        raise ModelError(f"training.model.options.mixed_precision must be true or false, not {mixed_precision!r}")
    return mixed_precision
