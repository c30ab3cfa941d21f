import csv
import math
from types import SimpleNamespace

import pytest

from unmix.core.training.callbacks import (
    CosineLearningRate,
    EarlyStopping,
    ReduceLearningRate,
    ResultsCsv,
    TrainingState,
    monitor_mode,
)


def test_results_csv_appends_and_keeps_the_seed_layout(tmp_path):
    path = tmp_path / "results.csv"
    writer = ResultsCsv(path, ";")
    state = TrainingState()
    writer.on_epoch_end(1, {"loss": 0.5, "val_loss": 0.6, "mean_pred": 0.4}, state)
    ResultsCsv(path, ";").on_epoch_end(2, {"loss": 0.4, "val_loss": 0.5, "mean_pred": 0.45}, state)  # resumed
    with path.open() as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[0] == ["epoch", "loss", "mean_pred", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["1", "2"]
    assert float(rows[2][1]) == 0.4


def test_early_stopping_counts_epochs_without_improvement_in_the_state():
    stopping = EarlyStopping("val_loss", min_delta=0.01, patience=2, mode="min")
    state = TrainingState()
    for epoch, value in enumerate([1.0, 0.5, 0.495, 0.6, 0.7], start=1):
        stopping.on_epoch_end(epoch, {"val_loss": value}, state)
    assert state.early_stopping_best == 0.5
    assert state.epochs_without_improvement == 3
    assert state.stop_reason and "val_loss" in state.stop_reason


def test_reduce_learning_rate_after_a_plateau_and_not_below_the_minimum():
    model = SimpleNamespace(learning_rate=1e-3)
    reduce = ReduceLearningRate(model, "val_loss", factor=0.1, patience=2, minimum=5e-5, mode="min")
    state = TrainingState()
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], start=1):
        reduce.on_epoch_end(epoch, {"val_loss": value}, state)
    assert model.learning_rate == 5e-5


def test_the_cosine_rate_follows_whichever_of_epochs_and_time_is_nearer_its_end():
    model = SimpleNamespace(learning_rate=1e-3)
    cosine = CosineLearningRate(model, start=1e-3, minimum=1e-5, total_epochs=100, time_limit_seconds=600.0)
    cosine.on_epoch_end(50, {}, TrainingState(training_seconds=60.0))
    assert model.learning_rate == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    cosine.on_epoch_end(10, {}, TrainingState(training_seconds=300.0))
    assert model.learning_rate == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    cosine.on_epoch_end(12, {}, TrainingState(training_seconds=700.0))
    assert model.learning_rate == pytest.approx(1e-5)
    without_limit = CosineLearningRate(model, start=1e-3, minimum=0.0, total_epochs=4, time_limit_seconds=0.0)
    without_limit.on_epoch_end(1, {}, TrainingState(training_seconds=1e6))
    assert model.learning_rate == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_monitor_mode_auto():
    assert monitor_mode("val_loss", "auto") == "min"
    assert monitor_mode("target_sdr", "auto") == "max"
    assert monitor_mode("val_loss", "max") == "max"
