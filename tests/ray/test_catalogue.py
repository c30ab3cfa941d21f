"""`unmix catalogue` on a real two-node Ray cluster: a worker killed mid-song, broken songs, resuming.

The cluster is two `ray start` processes on 127.0.0.1 (a head and a second node), one CPU each, so
the two catalogue workers run on different nodes. The songs are separated by the gain-mask test
model; one song is half an hour long so that a worker is certainly killed while it separates it.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.helpers import assert_one_line_error, free_port, run_unmix, unmix_executable

SAMPLE_RATE = 8000
GOOD_SONGS = 17
LONG_SONG = "aaa_long"  # first in name order, so a worker starts on it at once
LONG_SECONDS = 1800
BROKEN = {"broken_text.wav": b"this is not audio", "broken_empty.mp3": b""}

pytestmark = pytest.mark.slow


def ray_executable() -> str:
    return str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 songs: 17 short ones, one long one and two that are not audio."""
    folder = tmp_path_factory.mktemp("catalogue-songs")
    rng = np.random.default_rng(3)
    for index in range(GOOD_SONGS):
        seconds = 1 + index % 3
        soundfile.write(folder / f"song{index:02d}.wav", rng.normal(0, 0.1, seconds * SAMPLE_RATE).astype(np.float32),
                        SAMPLE_RATE)
    soundfile.write(folder / f"{LONG_SONG}.wav", rng.normal(0, 0.1, LONG_SECONDS * SAMPLE_RATE).astype(np.float32),
                    SAMPLE_RATE, subtype="PCM_16")
    for name, content in BROKEN.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory, gain_environment: dict[str, str]):
    """The address of a head node and a second node, started as separate processes on 127.0.0.1 only."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Ray's servers listen on every interface whatever --node-ip-address says, so the cluster takes a fresh token.
    environment = {**gain_environment, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(100 * 2**20),
              "--disable-usage-stats", "--block"]
    head = subprocess.Popen([ray_executable(), "start", "--head", "--port", str(port), "--include-dashboard", "false",
                             *common], env=environment, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    nodes = [head]
    try:
        _wait_for_nodes(address, 1, environment)
        nodes.append(subprocess.Popen([ray_executable(), "start", "--address", address, *common], env=environment,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_nodes(address, 2, environment)
        yield address, environment
    finally:
        for node in reversed(nodes):
            with_group_signal(node, signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            with_group_signal(node, signal.SIGKILL)


def with_group_signal(process: subprocess.Popen, number: int) -> None:
    try:
        os.killpg(process.pid, number)
    except ProcessLookupError:
        pass


COUNT_NODES = ("import ray; ray.init(address='{address}', logging_level='ERROR'); "
               "print(len([node for node in ray.nodes() if node['Alive']]))")


def _wait_for_nodes(address: str, count: int, environment: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run([sys.executable, "-c", COUNT_NODES.format(address=address)], env=environment,
                                capture_output=True, text=True, timeout=60)
        if result.returncode == 0 and result.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} did not reach {count} nodes in {timeout} s")


def read_summary(output: Path) -> dict[str, dict[str, str]]:
    with open(output / "catalogue-summary.csv", newline="") as handle:
        return {row["song"] or row["uri"]: row for row in csv.DictReader(handle)}


def stems(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.wav"))}


def modification_times(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()
            and path.name != "lock"}


def long_song_worker(output: Path, timeout: float = 120) -> tuple[Path, int]:
    """The staging folder of the long song and the pid of the worker separating it, once it has begun."""
    staging = output / ".unmix-catalogue" / "staging"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for folder in staging.glob("*"):
            if any(LONG_SONG in path.name for path in folder.iterdir()):
                return folder, int(folder.name.rsplit("-", 1)[1])
        time.sleep(0.02)
    pytest.fail(f"no worker began separating {LONG_SONG} within {timeout} s")


def test_a_catalogue_survives_a_killed_worker_and_a_rerun_does_no_work(tmp_path, songs, gain_run, gain_environment,
                                                                       ray_cluster):
    address, cluster_environment = ray_cluster
    output = tmp_path / "stems"
    command = [unmix_executable(), "catalogue", str(songs), "--run-folder", str(gain_run), "--output", str(output),
               "--ray", address, "--workers", "2", "--tries", "2"]
    catalogue = subprocess.Popen(command, env=cluster_environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    staged, pid = long_song_worker(output)
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = catalogue.communicate(timeout=300)

    assert catalogue.returncode == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    summary = read_summary(output)
    assert len(summary) == GOOD_SONGS + 1 + len(BROKEN)
    good = [name for name in summary if not name.startswith("broken")]
    assert {summary[name]["status"] for name in good} == {"done"}
    assert summary[LONG_SONG]["tries"] == "2"
    assert summary[LONG_SONG]["worker"] != staged.name.split(".", 1)[1]
    for name in ("broken_text", "broken_empty"):
        assert summary[name]["status"] == "failed"
        assert summary[name]["tries"] == "2"
        assert "not audio" in summary[name]["error"] or "empty" in summary[name]["error"], summary[name]
    assert not list((output / ".unmix-catalogue" / "staging").iterdir())

    reference_songs = tmp_path / "good-songs"
    shutil.copytree(songs, reference_songs, ignore=shutil.ignore_patterns("broken*"))
    predicted = tmp_path / "predicted"
    result = run_unmix("predict", "--run-folder", str(gain_run), "--songs", str(reference_songs), "--output",
                       str(predicted), env=gain_environment, timeout=300)
    assert result.returncode == 0, result.stderr
    catalogued = stems(output)
    assert len(catalogued) == 2 * len(good)
    assert catalogued == stems(predicted)
    assert sorted(path.name for path in output.iterdir()) == sorted([*catalogued, ".unmix-catalogue",
                                                                     "catalogue-summary.csv"])

    before = modification_times(output)
    rerun = subprocess.run(command, env=cluster_environment, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 2, rerun.stderr
    assert "separated 0 songs" in rerun.stdout and f"{len(good)} were already done; 2 failed" in rerun.stdout
    unchanged = {name: time_ns for name, time_ns in modification_times(output).items()
                 if name != "catalogue-summary.csv"}
    assert unchanged == {name: time_ns for name, time_ns in before.items() if name != "catalogue-summary.csv"}

    (output / "song03_vocals.wav").write_bytes(b"")
    redo = subprocess.run(command, env=cluster_environment, capture_output=True, text=True, timeout=120)
    assert "separated 1 songs" in redo.stdout, redo.stdout + redo.stderr
    assert stems(output) == catalogued


def test_a_second_model_is_refused_in_the_same_output(tmp_path, songs, gain_run, gain_environment):
    output = tmp_path / "stems"
    shutil.copytree(gain_run, tmp_path / "other-run")
    manifest = tmp_path / "one.txt"
    manifest.write_text(f"# one song\n{songs / 'song00.wav'}\n")
    first = run_unmix("catalogue", str(manifest), "--run-folder", str(gain_run), "--output", str(output),
                      "--workers", "1", env=gain_environment, timeout=120)
    assert first.returncode == 0, first.stderr
    second = run_unmix("catalogue", str(manifest), "--run-folder", str(tmp_path / "other-run"), "--output",
                       str(output), env=gain_environment)
    assert_one_line_error(second, "holds stems made with other settings", "model", "--overwrite")
