"""Fixtures shared by the modules of the bad-input catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training_fixtures import set_gain_checkpoint


@pytest.fixture(scope="module")
def trained(gain_run: Path, gain_environment: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A tiny trained gain-mask run and the environment its `unmix` subprocesses need.

    The mask is 0.5 everywhere, so a separated song has known stems whatever the short training reached.
    """
    set_gain_checkpoint(gain_run, 0.5)
    return gain_run, gain_environment
