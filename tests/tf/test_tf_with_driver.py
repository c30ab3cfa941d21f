"""The Keras backend under core's training driver: a real run on audio made in the test, then a resume."""

from __future__ import annotations

import json
import math

import pytest

from tests.training_fixtures import write_seed_collection
from unmix.core.training.callbacks import read_results
from unmix.core.training.driver import train
from unmix.tf.model import load_checkpoint_model

# Keras' own saving code converts variables in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")


def write_tiny_hourglass_configuration(path, collection, epochs: int):
    configuration = {
        "environment": {"name": "tiny-hourglass"},
        "collection": {"folder": str(collection), "sample_rate": 8000, "song_limit": 0, "validation_ratio": 0.25,
                       "test_data_count": 0, "test_frequency": 0},
        "spectrogram_generation": {"fft_length": 128},
        "transformation": {"name": "train_window_predict_mask", "options": {"size": 16, "step": 16}},
        "training": {"epoch": {"count": epochs}, "batch_size": 4, "limit_items_per_song": 0,
                     "backend": "tensorflow", "loss_function": "L11_loss_mean",
                     "optimizer": {"name": "adam", "lr": 0.001},
                     "model": {"name": "hourglass", "options": {"stacks": 2, "hg_module": {"filters": 8}}},
                     "callbacks": {"tensorboard": {"enabled": True}}},
    }
    path.write_text(json.dumps(configuration, indent=2))
    return path


@pytest.mark.slow
def test_hourglass_trains_with_the_driver_and_resumes(tmp_path):
    collection = write_seed_collection(tmp_path / "collection", songs=4)
    configuration = write_tiny_hourglass_configuration(tmp_path / "tiny.jsonc", collection, epochs=2)
    run = train(configuration, working_directory=tmp_path)
    assert json.loads((run.path / "model.json").read_text())["backend"] == "tensorflow"
    assert (run.path / "weights" / "best.keras").is_file()
    assert list((run.path / "TensorBoard").glob("events.out.tfevents.*"))

    saved = json.loads(run.configuration_file.read_text().split("\n", 1)[-1])
    saved["training"]["epoch"]["count"] = 3
    run.configuration_file.write_text(json.dumps(saved))
    train("", resume=run.path)

    results = read_results(run.path / "results.csv")
    assert [row["epoch"] for row in results] == [1, 2, 3]
    # Whether it learns is tests/test_learning.py's question, with held-out songs and a margin: three
    # epochs on one validation song are too noisy for a loss trend (it failed CI once each way).
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["val_loss"]) for row in results)
    last = load_checkpoint_model(run.path / "weights" / "last.keras")
    steps_per_epoch = last.iterations // 3
    assert steps_per_epoch > 0 and last.iterations == 3 * steps_per_epoch
