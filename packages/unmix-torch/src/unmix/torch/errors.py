"""The one error this backend raises for user mistakes, kept apart so that it imports no torch."""

from unmix.core.errors import UnmixError


class ModelError(UnmixError):
    """A model, loss, optimiser, option or checkpoint that the configuration names but that cannot be used."""
