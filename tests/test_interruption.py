"""The README's promise about stopping training, shown on both real backends through the `unmix` command:
"Ctrl-C during training stops at the next batch and writes a checkpoint; a run killed outright
loses at most the epoch in progress. Either resumes with --resume."

Each test trains the tiny hourglass on wav files written here, with one window per batch so that an
epoch is 60 optimiser steps long, and interrupts it in the middle of epoch 2, found from the
progress bar `unmix train` prints on stderr. The optimiser's own step count, read from
weights/last, is what tells whether a checkpoint holds the steps of a part-done epoch.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import clean_environment, ctrl_c_reaches_the_child, run_unmix, unmix_executable
from tests.tiny_models import TINY_OPTIONS
from tests.training_fixtures import write_configuration, write_seed_collection
from unmix.core.training.callbacks import read_results

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    # Keras' own saving code converts variables in a way NumPy 2 deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"),
]

BACKENDS = [pytest.param("tensorflow", id="keras"), pytest.param("torch", id="torch")]
EPOCHS = 2
WINDOWS_PER_SONG = 20
# PyTorch single-threaded as in tests/torch/conftest.py; TensorFlow's start-up chatter off.
ENVIRONMENT = clean_environment(OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
PROGRESS = re.compile(r"epoch (\d+)/\d+:.*\|\s*(\d+)/(\d+) \[")


def write_long_epoch_configuration(folder: Path, backend: str) -> Path:
    """Many one-window batches per epoch, so a signal sent once the bar moves lands well inside the epoch."""
    collection = write_seed_collection(folder / "collection", songs=4, seconds=2.0)
    base = write_configuration(folder / "tiny.jsonc", collection, "hourglass", epochs=EPOCHS, backend=backend,
                               **TINY_OPTIONS)
    child = folder / "long-epochs.jsonc"
    child.write_text(json.dumps({
        "base": base.name,
        "spectrogram_generation": {"fft_length": 128},
        "transformation": {"options": {"size": 8, "step": 8}},
        "training": {"batch_size": 1, "limit_items_per_song": WINDOWS_PER_SONG, "loss_function": "L11_loss_mean",
                     "optimizer": {"lr": 0.001}},
    }))
    return child


class TrainingProcess:
    """`unmix train` in its own process group, as a terminal runs it, with its progress bar followed live."""

    def __init__(self, configuration: Path, working_directory: Path) -> None:
        self.process = subprocess.Popen(
            [unmix_executable(), "train", str(configuration), "--workingdir", str(working_directory)],
            env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=ctrl_c_reaches_the_child,
        )
        self.stderr: list[str] = []
        self.progress: tuple[int, int, int] | None = None
        self._reader = threading.Thread(target=self._follow_stderr, daemon=True)
        self._reader.start()

    def _follow_stderr(self) -> None:
        # Text mode turns the bar's carriage returns into line ends, so every redraw is a line.
        for line in self.process.stderr:
            self.stderr.append(line)
            match = PROGRESS.search(line)
            if match:
                self.progress = (int(match[1]), int(match[2]), int(match[3]))

    def wait_inside_epoch(self, epoch: int, timeout: float = 120) -> tuple[int, int]:
        """(steps done, steps per epoch) as soon as `epoch` shows progress, so that a signal sent next lands
        inside it; a bar first seen past half the epoch fails, since the signal could then arrive too late."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.progress is not None and self.progress[0] == epoch and self.progress[1] > 0:
                _, done, steps = self.progress
                assert done < steps // 2, f"the bar was first seen at {done}/{steps}: too late to be mid-epoch"
                return done, steps
            time.sleep(0.01)
        raise AssertionError(f"epoch {epoch} never started:\n{self.output()}")

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    def stop_if_running(self) -> None:
        if self.process.poll() is None:
            self.kill()
            self.finish()

    def finish(self, timeout: float = 60) -> int:
        returncode = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return returncode

    def output(self) -> str:
        return "".join(self.stderr)[-4000:]


StartTraining = Callable[[str], TrainingProcess]


@pytest.fixture
def start_training(tmp_path: Path) -> Iterator[StartTraining]:
    """Starts the long-epoch training of a backend in tmp_path; a test that fails early leaves no process behind."""
    started: list[TrainingProcess] = []

    def start(backend: str) -> TrainingProcess:
        started.append(TrainingProcess(write_long_epoch_configuration(tmp_path, backend), tmp_path))
        return started[-1]

    yield start
    for training in started:
        training.stop_if_running()


def optimiser_steps(checkpoint: Path) -> int:
    """The optimiser's own counter, not one of unmix's: a resumed Adam continues from it, so it shows which
    training steps a checkpoint really holds."""
    if checkpoint.suffix == ".keras":
        from unmix.tf.model import load_checkpoint_model

        return int(load_checkpoint_model(checkpoint).optimizer.iterations.numpy())
    import torch

    state = torch.load(checkpoint, weights_only=True)["optimizer"]["state"]
    steps = {int(parameter["step"]) for parameter in state.values()}
    assert len(steps) == 1, f"parameters of one network took different numbers of steps: {steps}"
    return steps.pop()


def run_folder(working_directory: Path) -> Path:
    (run,) = (working_directory / "runs").iterdir()
    return run


def last_checkpoint(run: Path) -> Path:
    (checkpoint,) = (run / "weights").glob("last.*")
    return checkpoint


def finished_epoch(run: Path) -> int:
    return json.loads((run / "state.json").read_text())["epoch"]


def result_epochs(run: Path) -> list[int]:
    return [row["epoch"] for row in read_results(run / "results.csv")]


def resume(run: Path) -> None:
    result = run_unmix("train", "--resume", str(run), env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_checkpoints_the_steps_of_the_epoch_in_progress_and_resumes(
    tmp_path: Path, backend: str, start_training: StartTraining
) -> None:
    training = start_training(backend)
    seen, steps_per_epoch = training.wait_inside_epoch(2)
    training.ctrl_c()
    assert training.finish() == 130, training.output()
    assert "Resume with: unmix train --resume" in training.output()

    run = run_folder(tmp_path)
    assert finished_epoch(run) == 1
    assert result_epochs(run) == [1]
    interrupted_steps = optimiser_steps(last_checkpoint(run))
    assert steps_per_epoch + seen <= interrupted_steps < 2 * steps_per_epoch

    resume(run)
    assert result_epochs(run) == [1, 2]
    assert finished_epoch(run) == 2
    # Epoch 2 runs again in full, on top of the interrupted checkpoint's steps.
    assert optimiser_steps(last_checkpoint(run)) == interrupted_steps + steps_per_epoch


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_loses_only_the_epoch_in_progress_and_resumes(
    tmp_path: Path, backend: str, start_training: StartTraining
) -> None:
    training = start_training(backend)
    _, steps_per_epoch = training.wait_inside_epoch(2)
    training.kill()
    assert training.finish() == -signal.SIGKILL

    run = run_folder(tmp_path)
    assert finished_epoch(run) == 1
    assert result_epochs(run) == [1]
    assert optimiser_steps(last_checkpoint(run)) == steps_per_epoch

    resume(run)
    assert result_epochs(run) == [1, 2]
    assert finished_epoch(run) == 2
    assert optimiser_steps(last_checkpoint(run)) == 2 * steps_per_epoch
