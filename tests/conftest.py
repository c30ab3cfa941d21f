"""Fixtures shared by the test modules of every folder.

Most tests of `unmix predict` and `unmix evaluate` need a real finished run folder, and the
`unmix` subprocesses they start need to find the model that trained it. The tiny gain-mask run
(the numpy test model, trained in about a second) serves both. The fixtures are module-scoped:
each module that asks trains its own run, once, because several modules change the run's weights
or files and must not see each other's changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import clean_environment
from tests.training_fixtures import gain_plugin_path, train_gain_run


@pytest.fixture(scope="module")
def gain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the gain-mask test model (train_gain_run's defaults); tests may overwrite its weights."""
    return train_gain_run(tmp_path_factory.mktemp("gain-run"))


@pytest.fixture(scope="module")
def gain_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment for `unmix` subprocesses that load gain-mask runs: a subprocess does not see the model
    registered in the test process, so it gets the model as a plugin distribution on PYTHONPATH."""
    return clean_environment(PYTHONPATH=gain_plugin_path(tmp_path_factory.mktemp("gain-site")))


@pytest.fixture
def unmix_free_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`tmp_path` as the working directory, without the caller's UNMIX_* variables: configuration lookups
    (./configurations, UNMIX_CONFIGURATIONS_DIR) then see only what the test writes."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("UNMIX_")]:
        monkeypatch.delenv(name)
    return tmp_path
