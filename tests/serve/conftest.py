"""Fixtures of the serve tests: a runs folder holding the real gain-mask test run, evaluated.

The run is evaluated once per module with `evaluate_run` (a few seconds), so the pages and the API
have a real evaluation.json and real per-song plots to show.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.training_fixtures import register_gain_model


@pytest.fixture(scope="module")
def runs_folder(gain_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --runs folder with the evaluated gain run and a second copy of it (for comparisons)."""
    from unmix.core.evaluation.evaluate import evaluate_run

    register_gain_model()
    evaluate_run(gain_run, progress=False)
    folder = tmp_path_factory.mktemp("runs")
    shutil.copytree(gain_run, folder / gain_run.name)
    shutil.copytree(gain_run, folder / f"{gain_run.name}-copy")
    return folder


@pytest.fixture(scope="module")
def run_name(gain_run: Path) -> str:
    return gain_run.name
