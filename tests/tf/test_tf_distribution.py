"""tf.distribute: two worker processes on 127.0.0.1, and one batch split over two devices.

Both start fresh Python processes (a cluster or device layout must be set before TensorFlow
first runs); each is bounded by a timeout so a worker that cannot reach its peer fails the test
instead of hanging it. Together they take about 20 s on two cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers import REPOSITORY

TIMEOUT_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def python_environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("UNMIX_")}
    environment.update(PYTHONPATH=str(REPOSITORY), TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return environment


def wait_for_all(processes: list[subprocess.Popen], timeout: float) -> None:
    """Wait for every process; if one fails or time runs out, stop the rest (a lone worker waits forever)."""
    deadline = time.monotonic() + timeout
    try:
        while any(process.poll() is None for process in processes):
            if any(process.returncode not in (None, 0) for process in processes):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the multi-worker processes did not finish within {timeout} s")
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_two_workers_train_to_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes, logs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        logs.append(tmp_path / f"worker{index}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "tests.tf.multi_worker_train", str(tmp_path / f"worker{index}.npz")],
                cwd=REPOSITORY, env=python_environment(TF_CONFIG=json.dumps(tf_config)),
                stdout=log, stderr=subprocess.STDOUT,
            ))
    wait_for_all(processes, TIMEOUT_SECONDS)
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log.read_text()[-3000:]
    first, second = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    assert int(first["iterations"]) == int(second["iterations"]) == 2
    assert float(first["loss"]) == float(second["loss"])
    assert sorted(first.files) == sorted(second.files)
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_a_batch_split_over_two_devices_trains_like_one_device():
    result = subprocess.run(
        [sys.executable, "-m", "tests.tf.mirrored_two_devices"], cwd=REPOSITORY, env=python_environment(),
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["difference"] < 1e-4, "the optimiser's moments differ: the gradient was scaled wrongly"
    for name, value in report["one"].items():
        assert report["two"][name] == pytest.approx(value, rel=1e-4, abs=1e-7)
