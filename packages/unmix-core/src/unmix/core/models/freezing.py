"""Which weights a `training.freeze` entry names, read the same way by every backend.

A network's weights have nested names: PyTorch's parameter names ("hourglass.inner.conv.weight",
joined by "."), Keras' layer names (a nested model's layers joined by "/"). An entry names a group:
the name itself and everything below it. A plain string prefix would not do, because "layers.1"
would then also freeze "layers.10" to "layers.19" of a deep network.
"""

from __future__ import annotations

from collections.abc import Sequence

from unmix.core.errors import ModelError, did_you_mean

# How many top-level names an error shows: enough to recognise the network, short enough for one line.
SHOWN_NAMES = 8


def names_under(prefixes: Sequence[str], names: Sequence[str], *, separator: str = ".",
                kind: str = "parameter") -> list[str]:
    """The `names` under any of `prefixes`, in their order.

    A prefix under which no name lies is a typo, not a choice to freeze nothing, so it is a
    `ModelError` with the closest group name and the network's top-level names: the user learns
    what the network calls its parts without reading its code.
    """
    for prefix in prefixes:
        if not any(is_under(name, [prefix], separator) for name in names):
            groups = _groups(names, separator)
            top = list(dict.fromkeys(name.split(separator)[0] for name in names))
            shown = ", ".join(top[:SHOWN_NAMES]) + (f", ... ({len(top)} in all)" if len(top) > SHOWN_NAMES else "")
            raise ModelError(f"'{prefix}' names no {kind} of this model{did_you_mean(prefix, groups)}; "
                             f"its top-level names are {shown or 'none'}")
    return [name for name in names if is_under(name, prefixes, separator)]


def is_under(name: str, prefixes: Sequence[str], separator: str = ".") -> bool:
    """Whether `name` is one of `prefixes` or lies below one."""
    return any(name == prefix or name.startswith(prefix + separator) for prefix in prefixes)


def _groups(names: Sequence[str], separator: str) -> list[str]:
    """Every name and every group above one ("a.b.c" gives "a", "a.b", "a.b.c"): what a hint may suggest."""
    groups: dict[str, None] = {}
    for name in names:
        parts = name.split(separator)
        for end in range(1, len(parts) + 1):
            groups[separator.join(parts[:end])] = None
    return list(groups)
