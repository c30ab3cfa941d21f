import json
import os
import signal
import subprocess
import time

import pytest

from tests.helpers import clean_environment, ctrl_c_reaches_the_child, run_unmix, unmix_executable
from tests.training_fixtures import gain_plugin_path, register_gain_model, write_configuration, write_seed_collection
from unmix.core.training.callbacks import read_results
from unmix.core.training.driver import train

# Each case trains for real (some until a signal lands); the fast subset skips this module.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def gain_model_registered():
    register_gain_model()


def test_a_run_trains_and_leaves_a_complete_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("UNMIX_SONG_LIMIT", "0")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-record")
    collection = write_seed_collection(tmp_path / "collection")
    configuration = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=4)
    run = train(configuration, working_directory=tmp_path)

    assert run.path.parent == tmp_path / "runs"
    assert run.name.endswith("-tiny")
    for name in ("configuration.jsonc", "environment.json", "logs.txt", "results.csv", "model.json", "state.json",
                 "weights/best.npz", "weights/last.npz", "plots/loss.png"):
        assert (run.path / name).is_file(), name
    environment = json.loads((run.path / "environment.json").read_text())
    assert environment["variables"] == {"UNMIX_SONG_LIMIT": "0"}
    assert "do-not-record" not in (run.path / "environment.json").read_text()
    assert run.load_configuration().settings.training.model.name == "gain-mask"
    model = json.loads((run.path / "model.json").read_text())
    assert model["backend"] == "numpy" and model["input_shape"] == [129, 16, 1]

    results = read_results(run.path / "results.csv")
    assert [row["epoch"] for row in results] == [1, 2, 3, 4]
    assert results[-1]["val_loss"] < results[0]["val_loss"]
    assert "trainable parameters: 129" in (run.path / "logs.txt").read_text()


def test_resume_continues_at_the_next_epoch_and_appends(tmp_path):
    collection = write_seed_collection(tmp_path / "collection")
    configuration = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=2)
    run = train(configuration, working_directory=tmp_path)
    saved = json.loads(run.configuration_file.read_text().split("\n", 1)[1])
    saved["training"]["epoch"]["count"] = 4
    run.configuration_file.write_text(json.dumps(saved))
    train("", resume=run.path)
    assert [row["epoch"] for row in read_results(run.path / "results.csv")] == [1, 2, 3, 4]
    assert json.loads(run.state_file.read_text())["epoch"] == 4


def test_a_time_limit_ends_training_by_itself_and_the_cosine_rate_anneals_over_it(tmp_path):
    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=2.0)
    configuration = write_configuration(tmp_path / "budget.jsonc", collection, "gain-mask", epochs=100000,
                                        seconds_per_batch=0.02)
    settings = json.loads(configuration.read_text().split("\n", 1)[1])
    settings["training"]["time_limit_minutes"] = 0.05
    settings["training"]["callbacks"]["cosine_learningrate"] = {"enabled": True, "min_learningrate": 0.001}
    configuration.write_text(json.dumps(settings))
    started = time.monotonic()
    run = train(configuration, working_directory=tmp_path)

    assert 3.0 <= time.monotonic() - started < 20.0
    state = json.loads(run.state_file.read_text())
    assert "time limit of 0.05 minutes reached" in state["stop_reason"]
    assert 3.0 <= state["training_seconds"] < 4.5
    rates = [row["lr"] for row in read_results(run.path / "results.csv")]
    assert len(rates) >= 3 and rates[0] == pytest.approx(0.5)
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == len(rates)
    assert state["learning_rate"] == pytest.approx(0.001)

    train("", resume=run.path)
    assert len(read_results(run.path / "results.csv")) == len(rates)


def start_training(tmp_path, seconds_per_batch):
    collection = write_seed_collection(tmp_path / "collection", songs=8, seconds=4.0)
    configuration = write_configuration(tmp_path / "slow.jsonc", collection, "gain-mask", epochs=50,
                                        seconds_per_batch=seconds_per_batch)
    environment = clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"))
    process = subprocess.Popen([unmix_executable(), "train", str(configuration), "--workingdir", str(tmp_path)],
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ctrl_c_reaches_the_child)
    return process, environment


def wait_for_epochs(tmp_path, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else []
        if runs and len(read_results(runs[0] / "results.csv")) >= count:
            return runs[0]
        time.sleep(0.05)
    raise AssertionError(f"training did not reach {count} epochs in {timeout} s")


def test_ctrl_c_writes_a_checkpoint_and_the_run_resumes(tmp_path):
    process, environment = start_training(tmp_path, seconds_per_batch=0.02)
    run = wait_for_epochs(tmp_path, 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Resume with: unmix train --resume" in stderr and "Traceback" not in stderr
    done = json.loads((run / "state.json").read_text())["epoch"]
    assert (run / "weights" / "last.npz").is_file()

    resumed = subprocess.Popen([unmix_executable(), "train", "--resume", str(run)], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ctrl_c_reaches_the_child)
    wait_for_epochs(tmp_path, done + 1)
    resumed.send_signal(signal.SIGINT)
    resumed.communicate(timeout=60)
    epochs = [row["epoch"] for row in read_results(run / "results.csv")]
    assert epochs == list(range(1, len(epochs) + 1))
    assert len(epochs) > done


def test_sigkill_loses_at_most_the_epoch_in_progress(tmp_path):
    process, environment = start_training(tmp_path, seconds_per_batch=0.02)
    run = wait_for_epochs(tmp_path, 2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    done = json.loads((run / "state.json").read_text())["epoch"]
    assert done >= 1  # the kill may land between an epoch's results row and its checkpoint

    saved = json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])
    saved["training"]["epoch"]["count"] = done + 2
    saved["training"]["model"]["options"]["seconds_per_batch"] = 0
    (run / "configuration.jsonc").write_text(json.dumps(saved))
    result = run_unmix("train", "--resume", str(run), env=environment)
    assert result.returncode == 0, result.stderr
    assert [row["epoch"] for row in read_results(run / "results.csv")] == list(range(1, done + 3))


def test_bad_training_input_is_one_line(tmp_path):
    environment = clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"))
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    result = run_unmix("train", "--resume", str(not_a_run), env=environment)
    assert result.returncode == 2 and "is not a run folder" in result.stderr and "Traceback" not in result.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    configuration = write_configuration(tmp_path / "empty.jsonc", empty, "gain-mask")
    result = run_unmix("train", str(configuration), env=environment)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr

    collection = write_seed_collection(tmp_path / "collection", songs=3)
    configuration = write_configuration(tmp_path / "model.jsonc", collection, "gain-masc")
    result = run_unmix("train", str(configuration), env=environment)
    assert result.returncode == 2 and "unknown model 'numpy:gain-masc'" in result.stderr, result.stderr

    configuration = write_configuration(tmp_path / "torch.jsonc", collection, "gain-mask", backend="jax")
    result = run_unmix("train", str(configuration), env=environment)
    assert result.returncode == 2 and "training.backend 'jax' has no models installed" in result.stderr


def test_the_run_records_the_instrument_its_collection_holds(tmp_path):
    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=1.0, target="guitar")
    configuration = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=1)
    run = train(configuration, working_directory=tmp_path)
    recorded = json.loads(run.configuration_file.read_text().split("\n", 1)[1])
    assert recorded["collection"]["target"] == "guitar"
    assert run.load_configuration().settings.collection.target == "guitar"
