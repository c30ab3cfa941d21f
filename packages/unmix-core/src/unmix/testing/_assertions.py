"""The one way unmix.testing fails a check."""

from __future__ import annotations


def require(condition: bool, message: str) -> None:
    """Raise AssertionError(message) unless `condition`: an explicit check, not `assert`, because the
    checks must hold under `python -O` and in helper modules that pytest does not rewrite."""
    if not condition:
        raise AssertionError(message)
