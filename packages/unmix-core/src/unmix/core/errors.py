"""Errors that describe a user's mistake.

Anything raised as an `UnmixError` is shown to the user as one line (what, where, what to do) and
ends the command with exit code 2; any other exception is a bug in unmix and keeps its traceback.
"""


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
