"""Training, evaluating and predicting with small Keras networks on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.tiny_models import INPUT_SHAPE, build, half_gain_batches, tiny_settings
from unmix.core.config.schema import Optimizer
from unmix.core.interfaces import SeparationModel
from unmix.tf import model as tf_model
from unmix.tf.losses import LOSSES


@pytest.mark.slow
def test_tiny_hourglass_learns_a_half_gain_mask():
    model = build(tiny_settings(loss_function="L11_loss", metrics=["mean_pred", "max_pred"]))
    assert isinstance(model, SeparationModel)
    assert model.backend == "tensorflow"
    assert model.checkpoint_suffix == ".keras"
    before = model.evaluate(half_gain_batches(4, seed=100), 4)["loss"]
    epochs = [model.train_epoch(half_gain_batches(15, seed=epoch), 15, lambda step, running: None)
              for epoch in range(4)]
    after = model.evaluate(half_gain_batches(4, seed=100), 4)
    assert set(epochs[0]) == {"loss", "mean_pred", "max_pred"}
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert after["loss"] < 0.5 * before
    # The raw mask the network learned is close to the true 0.5 gain (the DC row is always 0).
    mask = model.predict(next(half_gain_batches(1, seed=200))[0])
    assert abs(float(np.median(mask[:, 1:])) - 0.5) < 0.15


@pytest.mark.slow
def test_on_batch_gets_every_step_with_running_means():
    model = build(tiny_settings())
    calls = []
    result = model.train_epoch(half_gain_batches(10), 3, lambda step, running: calls.append((step, dict(running))))
    assert [step for step, _ in calls] == [0, 1, 2]
    assert model.iterations == 3
    assert calls[-1][1] == pytest.approx(result)
    assert set(result) == {"loss", "mean_pred"}


@pytest.mark.slow
def test_an_exception_from_on_batch_stops_the_epoch():
    """The driver leaves an epoch on Ctrl-C by raising from its progress callback."""
    model = build(tiny_settings())

    class Stop(Exception):
        pass

    def stop_after_two(step, running):
        if step == 1:
            raise Stop

    with pytest.raises(Stop):
        model.train_epoch(half_gain_batches(10), 10, stop_after_two)
    assert model.iterations == 2


def test_evaluate_leaves_the_weights_alone():
    model = build(tiny_settings())
    before = model.network.get_weights()
    metrics = model.evaluate(half_gain_batches(3), 3)
    assert set(metrics) == {"loss", "mean_pred"}
    assert all(np.array_equal(a, b) for a, b in zip(before, model.network.get_weights(), strict=True))
    assert model.iterations == 0


def test_predict_returns_the_raw_network_output():
    model = build(tiny_settings())
    inputs = np.random.default_rng(1).random((7, *INPUT_SHAPE), dtype=np.float32)
    outputs = model.predict(inputs)
    assert outputs.shape == inputs.shape
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, np.asarray(model.network(inputs, training=False)), rtol=1e-5, atol=1e-6)
    assert np.all(outputs[:, 0] == 0), "the DC row is padded back with zeros"
    assert model.predict(inputs[:0]).shape == (0, *INPUT_SHAPE)


def test_learning_rate_can_be_read_and_set():
    model = build(tiny_settings(optimizer=Optimizer(name="rmsprop", lr=0.01)))
    assert model.learning_rate == pytest.approx(0.01)
    model.learning_rate = 0.002
    assert model.learning_rate == pytest.approx(0.002)


@pytest.mark.slow
def test_mirrored_strategy_trains_on_one_cpu():
    model = build(tiny_settings(distribution="mirrored"))
    assert isinstance(model.strategy, tf.distribute.MirroredStrategy)
    model.train_epoch(half_gain_batches(2), 2, lambda step, running: None)
    assert model.iterations == 2


@pytest.mark.slow
def test_mixed_precision_trains_in_bfloat16_on_a_cpu_that_has_it(monkeypatch):
    # Whether this CPU has the instructions decides speed, not results: oneDNN emulates bfloat16 elsewhere.
    monkeypatch.setattr(tf_model, "cpu_has_bfloat16", lambda: True)
    model = build(tiny_settings(options={"stacks": 2, "hg_module": {"filters": 8}, "mixed_precision": True}))
    assert model.network.layers[2].compute_dtype == "bfloat16"
    assert model.network.layers[2].variable_dtype == "float32"
    assert type(model.optimizer).__name__ != "LossScaleOptimizer"
    assert model.summary().endswith("Computes in: bfloat16 on cpu, with float32 weights")
    metrics = model.train_epoch(half_gain_batches(3), 3, lambda step, running: None)
    assert np.isfinite(metrics["loss"])
    assert model.predict(next(half_gain_batches(1))[0]).dtype == np.float32
    # Mixed precision is per model: the next model built in this process computes in float32 again.
    plain = build(tiny_settings())
    assert plain.network.layers[2].compute_dtype == "float32"
    assert plain.summary().endswith("Computes in: float32 on cpu")


def test_mixed_precision_on_a_cpu_without_bfloat16_trains_in_float32_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(tf_model, "cpu_has_bfloat16", lambda: False)
    model = build(tiny_settings(options={"stacks": 2, "hg_module": {"filters": 8}, "mixed_precision": True}))
    assert model.network.layers[2].compute_dtype == "float32"
    assert "this CPU has no bfloat16 instructions: the tensorflow backend trains in float32" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "input_shape", "output_frames"),
    [
        ("leakyrelu", (65, 8, 1), 8),
        ("largeleakyrelu", (65, 8, 1), 8),
        ("mask-leakyrelu", (65, 8, 2), 8),
        ("unet", (65, 16, 1), 16),
        ("mask", (65, 8, 1), 1),
        ("mask-ibm", (65, 8, 1), 1),
        ("rnn", (65, 3, 1), 1),
    ],
)
def test_seed_models_train_a_step(name, input_shape, output_frames):
    settings = tiny_settings(name, {}, loss_function="mean_squared_error", frames=input_shape[1], step=output_frames)
    model = build(settings, input_shape)
    bins, _frames, channels = input_shape
    generator = np.random.default_rng(3)
    batch = (generator.random((2, *input_shape), dtype=np.float32),
             generator.random((2, bins, output_frames, channels), dtype=np.float32))
    metrics = model.train_epoch([batch], 1, lambda step, running: None)
    assert np.isfinite(metrics["loss"])
    assert model.predict(batch[0]).shape == (2, bins, output_frames, channels)


def numpy_loss(name: str, targets: np.ndarray, outputs: np.ndarray, inputs: np.ndarray) -> float:
    """The seed's definitions (and unmix's masked squared error), written out in numpy."""
    difference = outputs - targets
    epsilon = 1e-7
    clipped = np.clip(outputs, epsilon, 1 - epsilon)
    return {
        "mean_squared_error": np.mean(difference**2),
        "mean_squared_error_noaxis": np.mean(difference**2),
        "mean_absolute_error": np.mean(np.abs(difference)),
        "mean_squared_log_error": np.mean(
            (np.log(np.maximum(outputs, epsilon) + 1) - np.log(np.maximum(targets, epsilon) + 1)) ** 2
        ),
        "squared_hinge": np.mean(np.maximum(1 - targets * outputs, 0) ** 2),
        "root_mean_squared_error": np.sqrt(np.mean(difference**2)),
        "binary_crossentropy": -np.mean(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped)),
        "euclidean_loss": np.sqrt(np.sum(difference**2)),
        "L11_loss": np.sum(np.abs(targets - inputs * outputs)),
        "L11_loss_mean": np.mean(np.abs(targets - inputs * outputs)),
        "masked_squared_error": np.mean((targets - inputs * outputs) ** 2),
    }[name]


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_match_the_seeds_definitions(name):
    generator = np.random.default_rng(5)
    targets, outputs, inputs = (generator.random((2, 9, 4, 1), dtype=np.float32) for _ in range(3))
    value = float(LOSSES[name].function(tf.constant(targets), tf.constant(outputs), tf.constant(inputs)))
    assert value == pytest.approx(numpy_loss(name, targets, outputs, inputs), rel=1e-5)


@pytest.mark.slow
def test_l11_loss_sums_and_its_mean_variant_does_not_depend_on_batch_size():
    model = build(tiny_settings(loss_function="L11_loss"))
    mean_model = build(tiny_settings(loss_function="L11_loss_mean"))
    inputs = next(half_gain_batches(1, batch_size=4))[0]
    small, large = [(inputs[:2], inputs[:2] * 0.3)], [(inputs, inputs * 0.3)]
    ratio = model.evaluate(large, 1)["loss"] / model.evaluate(small, 1)["loss"]
    assert ratio == pytest.approx(2.0, rel=0.3)
    mean_ratio = mean_model.evaluate(large, 1)["loss"] / mean_model.evaluate(small, 1)["loss"]
    assert mean_ratio == pytest.approx(1.0, rel=0.3)
