"""`training.distribution: "ddp"`: two processes on 127.0.0.1 (gloo), started as torchrun would start them.

Each rank is a fresh Python process (tests/torch/ddp_worker.py) with RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT set; the test bounds them with a timeout and stops the survivor when
one fails, so a rank waiting for a dead peer fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.helpers import REPOSITORY, free_port
from tests.torch.tiny import TINY_OPTIONS, build, half_gain_batches, ignore, tiny_settings

# Starts two DDP ranks and trains; the fast subset skips this module.
pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 60


def rank_environment(rank: int, world_size: int, port: int) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("UNMIX_")}
    environment.update(PYTHONPATH=str(REPOSITORY), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    return environment


def wait_for_all(processes: list[subprocess.Popen], timeout: float) -> None:
    """Wait for every process; if one fails or time runs out, stop the rest (a lone rank would wait for its peer)."""
    deadline = time.monotonic() + timeout
    try:
        while any(process.poll() is None for process in processes):
            if any(process.returncode not in (None, 0) for process in processes):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the DDP processes did not finish within {timeout} s")
            time.sleep(0.1)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    output = tmp_path_factory.mktemp("ddp")
    port = free_port()
    processes, logs = [], []
    for rank in range(2):
        logs.append(output / f"rank{rank}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "tests.torch.ddp_worker", str(output)], cwd=REPOSITORY,
                env=rank_environment(rank, 2, port), stdout=log, stderr=subprocess.STDOUT,
            ))
    wait_for_all(processes, TIMEOUT_SECONDS)
    for process, log in zip(processes, logs, strict=True):
        assert process.returncode == 0, log.read_text()[-3000:]
    return output, np.load(output / "rank0.npz"), np.load(output / "rank1.npz")


def test_both_ranks_end_with_identical_weights_and_statistics(ranks):
    _, first, second = ranks
    assert int(first["iterations"]) == int(second["iterations"]) == 2, "four batches, two per rank"
    weights = [name for name in first.files if name.startswith("norm/")]
    assert any(name.endswith("running_var") for name in weights)
    for name in weights:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_both_ranks_report_the_same_losses_and_metrics(ranks):
    _, first, second = ranks
    for name in ("train_loss", "train_max_pred", "val_loss", "val_mean_pred"):
        assert float(first[name]) == float(second[name]), name


def test_only_rank_zero_writes_checkpoints(ranks):
    output, _, _ = ranks
    assert (output / "rank0.pt").is_file()
    assert not (output / "rank1.pt").exists()


def test_two_ranks_train_like_one_process_on_both_batches(ranks):
    """DDP averages gradients; the summed L11_loss is scaled so the update is one process's on the joint batch."""
    _, first, _ = ranks
    model = build(tiny_settings(options=TINY_OPTIONS, loss_function="L11_loss"))
    model.network.load_state_dict({name[len("start/"):]: torch.from_numpy(first[name])
                                   for name in first.files if name.startswith("start/")})
    batches = list(half_gain_batches(4, seed=7))
    joint = [(np.concatenate([batches[i][0], batches[i + 1][0]]), np.concatenate([batches[i][1], batches[i + 1][1]]))
             for i in (0, 2)]
    loss = model.train_epoch(joint, 2, ignore)["loss"]
    assert float(first["plain_loss"]) == pytest.approx(loss, rel=1e-5)
    for name, tensor in model.network.state_dict().items():
        np.testing.assert_allclose(first[f"plain/{name}"], tensor.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    # Adam hides a constant factor in the gradients, so compare them too.
    for name, parameter in model.network.named_parameters():
        np.testing.assert_allclose(first[f"grad/{name}"], parameter.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)


def test_a_rank_that_stops_stops_the_other_after_the_same_step(ranks):
    _, first, second = ranks
    assert str(second["stopped_by"]) == "own callback"
    assert "another DDP process was interrupted" in str(first["stopped_by"])
    assert int(first["stopping_iterations"]) == int(second["stopping_iterations"]) == 1
