"""tf.distribute: two worker processes on 127.0.0.1, each on its own batches, and one batch split over two devices.

Both start fresh Python processes (a cluster or device layout must be set before TensorFlow
first runs); each is bounded by a timeout so a worker that cannot reach its peer fails the test
instead of hanging it. Together they take about 20 s on two cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers import REPOSITORY, free_port
from tests.tiny_models import TINY_OPTIONS, build, half_gain_batches, ignore, tiny_settings

# Trains in several TensorFlow processes or devices (tens of seconds); the fast subset skips this module.
pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 180
ADAM_LR = 1e-3  # tiny_settings' learning rate


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


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> tuple[np.lib.npyio.NpzFile, np.lib.npyio.NpzFile]:
    """Both workers' results (tests/tf/multi_worker_train.py), each having trained on its own batches."""
    output = tmp_path_factory.mktemp("multi_worker")
    addresses = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes, logs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        logs.append(output / f"worker{index}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "tests.tf.multi_worker_train", str(output / f"worker{index}.npz")],
                cwd=REPOSITORY, env=python_environment(TF_CONFIG=json.dumps(tf_config)),
                stdout=log, stderr=subprocess.STDOUT,
            ))
    wait_for_all(processes, TIMEOUT_SECONDS)
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log.read_text()[-3000:]
    return np.load(output / "worker0.npz"), np.load(output / "worker1.npz")


def test_two_workers_on_different_batches_end_with_identical_weights_and_statistics(workers):
    first, second = workers
    for phase in ("norm", "plain"):
        assert int(first[f"{phase}_iterations"]) == int(second[f"{phase}_iterations"]) == 2, "two batches each"
        assert float(first[f"{phase}_loss"]) == float(second[f"{phase}_loss"]), phase
    assert sorted(first.files) == sorted(second.files)
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_two_workers_train_like_one_process_on_both_batches(workers):
    """Gradients are summed over the workers; with the summed L11_loss that is one process's step on the joint batch."""
    first, _ = workers
    model = build(tiny_settings(options=TINY_OPTIONS, loss_function="L11_loss"))
    model.network.set_weights([first[name] for name in sorted(first.files) if name.startswith("start/")])
    batches = list(half_gain_batches(4, seed=7))
    joint = [(np.concatenate([batches[i][0], batches[i + 1][0]]), np.concatenate([batches[i][1], batches[i + 1][1]]))
             for i in (0, 2)]
    loss = model.train_epoch(joint, 2, ignore)["loss"]
    assert float(first["plain_loss"]) == pytest.approx(loss, rel=1e-5)
    weights = [name for name in sorted(first.files) if name.startswith("plain/")]
    steps = 2
    for name, value in zip(weights, model.network.get_weights(), strict=True):
        # Another order of the sums (threads, the all-reduce) can flip Adam's step for a gradient near zero, which
        # moves that weight by up to 2 lr per step the other way (3 of 147,456 weights, by up to 3.3e-4, seen in
        # CI); so a few weights may differ by Adam's steps, and the rest must agree closely.
        difference = np.abs(first[name] - value)
        assert difference.max() <= steps * 2 * ADAM_LR, (name, difference.max())
        assert np.mean(difference > 1e-4 + 1e-4 * np.abs(value)) < 1e-2, name
    moments = [name for name in sorted(first.files) if name.startswith("moments/")]
    for name, variable in zip(moments, model.optimizer.variables, strict=True):
        # Gradients that were not averaged would move every moment by its own size: the median catches that.
        # Another order of the sums moves most moments by round-off only, but where it changes which element a
        # max or a ReLU passes the gradient to, a few moments change outright (189 of 3,136 of one layer, by up
        # to 10%, seen in a CI run of the whole suite; the module alone passes at 1e-3).
        expected = np.asarray(variable)
        relative = np.abs(first[name] - expected) / (np.abs(expected) + 1e-6)
        assert np.median(relative) < 1e-3, (name, np.median(relative))
        assert np.mean(relative > 1e-3) < 0.25, (name, np.mean(relative > 1e-3))


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
