"""`unmix serve` as a command: its help, and the one line a user's mistake gets before anything listens."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, run_unmix

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_serve_help_lists_its_options():
    result = run_unmix("serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--runs", "--host", "--port", "--jobs", "--max-upload-mb", "127.0.0.1", "8000"):
        assert option in result.stdout, option


def test_a_port_in_use_is_one_line(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_unmix("serve", "--runs", str(tmp_path), "--jobs", str(tmp_path / "jobs"), "--port", str(port))
    assert_one_line_error(result, f"port {port}", "already in use", "--port")
    assert result.stdout == ""


def test_a_missing_runs_folder_is_one_line(tmp_path: Path):
    result = run_unmix("serve", "--runs", str(tmp_path / "nothing"), "--jobs", str(tmp_path / "jobs"))
    assert_one_line_error(result, "runs folder", "does not exist", "--runs")
    assert not (tmp_path / "jobs").exists()
