"""Looking up a name that a configuration key takes from a fixed list (a loss, a metric, an optimiser).

Every backend reads the same configuration, so the lookup and its one-line error live here once:
a configuration gets the same answer, and the same did-you-mean, whichever framework trains it.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from unmix.core.errors import ModelError, did_you_mean


@attrs.frozen
class NameField:
    """A configuration key that takes one name from a list, and the words its error uses for that list."""

    key: str
    kind: str
    kinds: str
    # Optimiser names have always been guessed at in lower case (`ADAMM` suggests 'adam'); loss names as typed.
    hint_ignores_case: bool = False


def find_name(name: object, known: Sequence[str], field: NameField) -> str:
    """The exact name, else a case-insensitive match: configurations write `l11_loss` as often as `L11_loss`."""
    text = str(name)
    if text in known:
        return text
    for candidate in known:
        if candidate.lower() == text.lower():
            return candidate
    hint = did_you_mean(text, known, ignore_case=field.hint_ignores_case)
    raise ModelError(f"{field.key}: unknown {field.kind} '{name}'{hint}; known {field.kinds}: {', '.join(known)}")
