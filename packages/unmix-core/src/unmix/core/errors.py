"""Errors that describe a user's mistake.

Anything raised as an `UnmixError` is shown to the user as one line (what, where, what to do) and
ends the command with exit code 2; any other exception is a bug in unmix and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnmixError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong configuration value."""


class ConfigurationError(UnmixError):
    """A configuration file that cannot be read, merged, or validated."""


class PluginError(UnmixError):
    """A plugin name that is unknown or registered twice."""


class AudioError(UnmixError):
    """Audio that cannot be read, decoded or written."""


class ModelError(UnmixError):
    """A model, loss, optimiser, option or checkpoint that the configuration names but that cannot be used."""


def first_line(error: BaseException) -> str:
    """The first line of an exception from a library, or its class name when it has no text.

    Library errors (TensorFlow, PyTorch, mir_eval, pytube) can span pages; a one-line message
    quotes only the line that says what went wrong.
    """
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def did_you_mean(name: str, known: Iterable[str], *, ignore_case: bool = False) -> str:
    """The hint ` (did you mean 'x'?)` for the known name closest to `name`, or "" when none is close.

    Every "unknown ..." message appends this, so a typo gets the same hint wherever it is made.
    `ignore_case` matches case-insensitively (for names looked up that way) but still shows the
    known name as it is spelled.
    """
    spelled = {(candidate.lower() if ignore_case else candidate): candidate for candidate in known}
    close = difflib.get_close_matches(name.lower() if ignore_case else name, list(spelled), n=1)
    return f" (did you mean '{spelled[close[0]]}'?)" if close else ""
