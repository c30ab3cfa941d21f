"""`unmix config check` warns about the seed's keys that unmix accepts but does not read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import CONFIGURATIONS, clean_environment, run_unmix

# Every case runs the real `unmix` command in a subprocess (about a second each); the fast subset skips them.
pytestmark = pytest.mark.slow


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("unmix: warning:")]


def inert(file: Path, key: str) -> str:
    return f"unmix: warning: {file}: {key} is accepted for compatibility with unmix.io files but unmix does not use it"


def check(*files: Path) -> list[str]:
    result = run_unmix("config", "check", *map(str, files),
                       env=clean_environment(UNMIX_CONFIGURATIONS_DIR=str(CONFIGURATIONS)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == len(files), result.stdout
    return warnings_in(result.stderr)


def test_a_file_setting_two_inert_keys_gets_exactly_two_warning_lines(tmp_path: Path) -> None:
    configuration = tmp_path / "unmixio.jsonc"
    configuration.write_text(json.dumps({
        "base": "quickstart.jsonc",
        "environment": {"plot_folder": "figures"},
        # batch_size is read, so it must not be warned about although it sits beside an inert key.
        "training": {"batch_size": 4, "callbacks": {"tensorboard": {"enabled": False, "histogram_freq": 5}}},
    }))
    assert check(configuration) == [
        inert(configuration, "environment.plot_folder"),
        inert(configuration, "training.callbacks.tensorboard.histogram_freq"),
    ]


def test_the_warning_names_the_file_of_the_chain_that_set_the_key(tmp_path: Path) -> None:
    parent = tmp_path / "parent.jsonc"
    parent.write_text(json.dumps({"base": "quickstart.jsonc",
                                  "transformation": {"normalizers": {"zmuv": {"mode": "single"}}}}))
    child = tmp_path / "child.jsonc"
    child.write_text(json.dumps({"base": "parent.jsonc", "training": {"verbose": 2}}))
    assert check(child) == [
        inert(parent, "transformation.normalizers.zmuv.mode"),
        inert(child, "training.verbose"),
    ]


def test_a_shipped_configuration_that_sets_no_inert_key_gets_no_warning() -> None:
    # quickstart.jsonc inherits the shipped master.jsonc, which sets every inert key to its default.
    assert check(CONFIGURATIONS / "quickstart.jsonc") == []
