"""The torch backend through the real `unmix` command: train, resume, predict and evaluate a run folder.

Core's driver, run folders, prediction engine and evaluation know no framework; these tests show
that a torch run folder is an ordinary run folder for all of them, and that `unmix train-ddp`
leaves exactly one of them behind.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile

from tests.helpers import clean_environment, run_unmix
from tests.training_fixtures import write_configuration, write_seed_collection

# The real `unmix` command end to end on a real collection, for tens of seconds.
pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# Subprocesses run PyTorch single-threaded, as the in-process tests do (see conftest.py).
ENVIRONMENT = clean_environment(OMP_NUM_THREADS="1")


def tiny_torch_configuration(folder, collection, epochs: int, distribution: str = "none"):
    """write_configuration's tiny run on the torch hourglass, with a learning rate that suits Adam on it."""
    base = write_configuration(folder / "tiny.jsonc", collection, "hourglass", epochs=epochs, backend="torch",
                               stacks=2, hg_module={"filters": 8})
    child = folder / "tiny-torch.jsonc"
    child.write_text(json.dumps({
        "base": base.name,
        "environment": {"name": "tiny-torch"},
        "training": {"optimizer": {"lr": 0.001}, "limit_items_per_song": 4, "metrics": ["mean_pred", "max_pred"],
                     "distribution": distribution},
    }))
    return child


def results_epochs(run) -> list[str]:
    with (run / "results.csv").open() as handle:
        return [row["epoch"] for row in csv.DictReader(handle, delimiter=";")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch-run")
    collection = write_seed_collection(folder / "collection", songs=5, seconds=1.5)
    configuration = tiny_torch_configuration(folder, collection, epochs=2)
    result = run_unmix("train", str(configuration), "--workingdir", str(folder), env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stderr
    run = next((folder / "runs").iterdir())
    return run, collection, configuration


def test_unmix_train_makes_an_ordinary_run_folder(trained):
    run, _, _ = trained
    model = json.loads((run / "model.json").read_text())
    assert model["backend"] == "torch" and model["checkpoint_suffix"] == ".pt"
    assert model["trainable_parameters"] > 0 and model["input_shape"] == [129, 16, 1]
    assert sorted(path.name for path in (run / "weights").iterdir()) == ["best.pt", "last.pt"]
    with (run / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert {"loss", "val_loss", "mean_pred", "max_pred", "val_max_pred", "lr"} <= set(rows[0])
    assert "Trainable params" in (run / "logs.txt").read_text()


def test_resume_continues_the_epoch_count(trained, tmp_path):
    run, _, _ = trained
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 2
    configuration = json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])
    configuration["training"]["epoch"]["count"] = 3
    (run / "configuration.jsonc").write_text("// more epochs\n" + json.dumps(configuration))
    result = run_unmix("train", "--resume", str(run), env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "state.json").read_text())["epoch"] == 3
    assert results_epochs(run) == ["1", "2", "3"]


def test_unmix_predict_and_evaluate_use_the_torch_run(trained, tmp_path):
    run, collection, _ = trained
    song = tmp_path / "song.wav"
    samples = np.random.default_rng(1).normal(0, 0.1, (12000, 2)).astype(np.float32)
    soundfile.write(song, samples, 8000)
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), env=ENVIRONMENT, timeout=120)
    assert result.returncode == 0, result.stderr
    target, rate = soundfile.read(run / "predictions" / "song_vocals.wav")
    rest, _ = soundfile.read(run / "predictions" / "song_rest.wav")
    assert rate == 8000 and target.shape == samples.shape
    np.testing.assert_allclose(target + rest, soundfile.read(song)[0], atol=2 / 32768)

    result = run_unmix("evaluate", "--run-folder", str(run), "--collection", str(collection),
                       "--test-data-count", "1", env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads((run / "evaluation.json").read_text())
    assert {entry["method"] for entry in report["songs"]} == {"model", "mixture", "oracle"}


def test_train_ddp_runs_two_processes_leaves_one_run_folder_and_resumes_it(tmp_path):
    collection = write_seed_collection(tmp_path / "collection", songs=5, seconds=1.5)
    configuration = tiny_torch_configuration(tmp_path, collection, epochs=1, distribution="ddp")
    result = run_unmix("train-ddp", "--processes", "2", str(configuration), "--workingdir", str(tmp_path / "work"),
                       env=clean_environment(), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = list((tmp_path / "work" / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert sorted(path.name for path in (run / "weights").iterdir()) == ["best.pt", "last.pt"]
    assert "not started by torchrun" not in (run / "logs.txt").read_text()
    assert results_epochs(run) == ["1"]

    merged = json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])
    merged["training"]["epoch"]["count"] = 2
    (run / "configuration.jsonc").write_text("// one more epoch\n" + json.dumps(merged))
    result = run_unmix("train-ddp", "--processes", "2", "--resume", str(run), env=clean_environment(), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert results_epochs(run) == ["1", "2"], "rank 1 resumed from a copy and wrote nothing here"
    assert len(list((tmp_path / "work" / "runs").iterdir())) == 1


def test_train_ddp_refuses_a_configuration_without_ddp(trained):
    _, _, configuration = trained
    result = run_unmix("train-ddp", "--processes", "2", str(configuration), env=ENVIRONMENT, timeout=60)
    assert result.returncode == 2 and "training.distribution" in result.stderr and "Traceback" not in result.stderr
