"""Bad-input catalogue: writing files. A full disk, a killed writer, a second writer, a broken run.

Each case runs the real `unmix` command and checks that it ends with one line naming the culprit,
no traceback, and that what was written before is whole: the last checkpoint and state.json of
a run, stems already separated, and no half-written temporary left behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.bad_inputs.catalogue import (
    assert_clean_failure,
    assert_untouched,
    clean_environment,
    leftovers,
    run_unmix,
    snapshot,
    write_tone,
)
from tests.helpers import unmix_executable
from tests.training_fixtures import gain_plugin_path, write_configuration, write_seed_collection
from unmix.core.files import TEMPORARY_MARK
from unmix.core.training.callbacks import read_results

# Trains runs (some until a disk fills or a signal lands) through the real `unmix` command;
# the fast subset skips this module.
pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 2 MB file system that fills up: a tmpfs (needs root; skipped where it cannot be mounted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); the full-disk cases need root")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Take the free space of `disk` but `leave` bytes, with one filler file."""
    stats = os.statvfs(disk)
    wanted = stats.f_bavail * stats.f_frsize - leave
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        written = 0
        while written < wanted:
            written += os.write(descriptor, b"\0" * min(65536, wanted - written))
    except OSError as error:
        assert error.errno == errno.ENOSPC and leave == 0, error
    finally:
        os.close(descriptor)
    return filler


def slow_training(tmp_path: Path, working_directory: Path, epochs: int,
                  environment: dict[str, str]) -> subprocess.Popen[str]:
    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=2.0)
    configuration = write_configuration(tmp_path / "slow.jsonc", collection, "gain-mask", epochs=epochs,
                                        seconds_per_batch=0.2)
    return subprocess.Popen([unmix_executable(), "train", str(configuration), "--workingdir", str(working_directory)],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_state(runs: Path, epoch: int, timeout: float = 90) -> Path:
    """The run folder under `runs` once its state.json says `epoch` epochs are done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in runs.glob("*/state.json"):
            if json.loads(state.read_text())["epoch"] >= epoch:
                return state.parent
        time.sleep(0.02)
    raise AssertionError(f"no run under {runs} reached epoch {epoch} in {timeout} s")


def test_a_full_disk_while_training_keeps_the_run_resumable(tmp_path: Path, small_disk: Path) -> None:
    environment = clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"))
    training = slow_training(tmp_path, small_disk, epochs=4, environment=environment)
    run = wait_for_state(small_disk / "runs", 1)
    filler = fill(small_disk)
    stdout, stderr = training.communicate(timeout=120)
    result = subprocess.CompletedProcess(training.args, training.returncode, stdout, stderr)
    assert_clean_failure(result, str(run), "No space left on device", "free some space",
                         f"unmix train --resume {run}")
    assert not leftovers(run)
    done = json.loads((run / "state.json").read_text())["epoch"]
    with np.load(run / "weights" / "last.npz") as checkpoint:
        assert checkpoint["gains"].size > 0

    filler.unlink()
    resumed = run_unmix("train", "--resume", str(run), env=environment)
    assert resumed.returncode == 0, resumed.stderr
    assert done < 4
    assert [row["epoch"] for row in read_results(run / "results.csv")] == [1, 2, 3, 4]


def test_a_full_disk_before_the_first_epoch_leaves_no_half_made_run(tmp_path: Path, small_disk: Path) -> None:
    environment = clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"))
    collection = write_seed_collection(tmp_path / "collection", songs=4)
    configuration = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=1)
    fill(small_disk)
    result = run_unmix("train", str(configuration), "--workingdir", str(small_disk), env=environment)
    assert_clean_failure(result, "No space left on device", "run the training again")
    assert sorted(path.name for path in small_disk.rglob("*") if path.is_file()) == ["filler"]


def test_a_full_disk_while_predicting_leaves_no_partial_stem(trained, tmp_path: Path, small_disk: Path) -> None:
    run, environment = trained
    output = small_disk / "out"
    earlier = write_tone(output / "earlier_vocals.wav")
    song = write_tone(tmp_path / "song.wav", seconds=4.0, channels=2)
    before = snapshot(output)
    filler = fill(small_disk, leave=64 * 1024)
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(output),
                       env=environment)
    assert_clean_failure(result, str(output), "No space left on device", "free some space")
    assert_untouched(before, output)
    assert sorted(path.name for path in output.iterdir()) == [earlier.name]

    filler.unlink()
    again = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(output),
                      env=environment)
    assert again.returncode == 0, again.stderr
    assert soundfile.info(output / "song_vocals.wav").frames == 4 * 8000


def test_a_truncated_checkpoint_is_named(trained, tmp_path: Path) -> None:
    run, environment = trained
    broken = Path(shutil.copytree(run, tmp_path / "run"))
    best = broken / "weights" / "best.npz"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    before = snapshot(broken)
    result = run_unmix("predict", "--run-folder", str(broken), "--song", str(write_tone(tmp_path / "song.wav")),
                       "--output", str(tmp_path / "out"), env=environment)
    assert_clean_failure(result, str(best))
    assert_untouched(before, broken)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_run_folder_without_its_configuration(trained, tmp_path: Path) -> None:
    run, environment = trained
    broken = Path(shutil.copytree(run, tmp_path / "run"))
    (broken / "configuration.jsonc").unlink()
    before = snapshot(broken)
    song = write_tone(tmp_path / "song.wav")
    predicted = run_unmix("predict", "--run-folder", str(broken), "--song", str(song), env=environment)
    assert_clean_failure(predicted, str(broken), "configuration.jsonc")
    resumed = run_unmix("train", "--resume", str(broken), env=environment)
    assert_clean_failure(resumed, str(broken), "configuration.jsonc")
    assert_untouched(before, broken)


def test_two_trainings_resuming_one_run_at_once(tmp_path: Path) -> None:
    environment = clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"))
    first = slow_training(tmp_path, tmp_path, epochs=4, environment=environment)
    run = wait_for_state(tmp_path / "runs", 1)
    first.kill()  # SIGKILL: the OS must release its lock
    first.communicate(timeout=30)

    resuming = subprocess.Popen([unmix_executable(), "train", "--resume", str(run)], env=environment,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = run / ".training.lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.read_text().strip() == str(resuming.pid)):
        assert time.monotonic() < deadline and resuming.poll() is None, "the resumed training never took the run"
        time.sleep(0.02)
    second = run_unmix("train", "--resume", str(run), env=environment)
    assert_clean_failure(second, str(run), f"pid {resuming.pid}", "being trained")

    _, stderr = resuming.communicate(timeout=120)
    assert resuming.returncode == 0, stderr
    assert [row["epoch"] for row in read_results(run / "results.csv")] == [1, 2, 3, 4]


def test_kill_9_while_predicting_leaves_nothing_a_rerun_does_not_clean(trained, tmp_path: Path) -> None:
    run, environment = trained
    song = write_tone(tmp_path / "long.wav", seconds=300.0, channels=2)
    output = tmp_path / "out"
    arguments = [unmix_executable(), "predict", "--run-folder", str(run), "--song", str(song), "--output", str(output)]
    predicting = subprocess.Popen(arguments, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (output.is_dir() and any(TEMPORARY_MARK in path.name for path in output.iterdir())):
        assert time.monotonic() < deadline and predicting.poll() is None, "no temporary stem appeared"
        time.sleep(0.001)
    predicting.send_signal(signal.SIGKILL)
    predicting.wait(timeout=30)
    assert leftovers(output), "the killed prediction should have left its temporary stems"
    assert not (output / "long_vocals.wav").exists() and not (output / "long_rest.wav").exists()

    again = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(output),
                      env=environment)
    assert again.returncode == 0, again.stderr
    assert not leftovers(output)
    assert sorted(path.name for path in output.iterdir()) == ["long_rest.wav", "long_vocals.wav"]
    for stem in ("long_rest.wav", "long_vocals.wav"):
        assert soundfile.info(output / stem).frames == 300 * 8000


def test_an_output_folder_that_is_a_file(trained, tmp_path: Path) -> None:
    run, environment = trained
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should go")
    before = snapshot(tmp_path)
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(write_tone(tmp_path / "song.wav")),
                       "--output", str(blocker), env=environment)
    assert_clean_failure(result, str(blocker), "is a file")
    assert_untouched(before, tmp_path)


def test_secret_environment_variables_stay_out_of_the_run_folder(tmp_path: Path) -> None:
    secrets = {"UNMIX_API_TOKEN": "tok-3b1f9c7a", "AWS_SECRET_ACCESS_KEY": "aws-9d8e7f6a"}
    environment = clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"), UNMIX_RUN_LABEL="label-visible",
                                    **secrets)
    collection = write_seed_collection(tmp_path / "collection", songs=4)
    configuration = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=1)
    result = run_unmix("train", str(configuration), "--workingdir", str(tmp_path), env=environment)
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    for path in run.rglob("*"):
        if path.is_file():
            for value in secrets.values():
                assert value.encode() not in path.read_bytes(), f"{value} leaked into {path}"
    recorded = json.loads((run / "environment.json").read_text())["variables"]
    assert recorded == {"UNMIX_API_TOKEN": "<redacted>", "UNMIX_RUN_LABEL": "label-visible"}
