"""Training, evaluating and predicting with the tiny torch hourglass on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.torch.tiny import INPUT_SHAPE, NORM_OPTIONS, build, half_gain_batches, ignore, tiny_settings
from unmix.core.config.schema import Optimizer
from unmix.torch.losses import LOSSES


@pytest.mark.slow
def test_tiny_hourglass_learns_a_half_gain_mask():
    torch.manual_seed(0)
    model = build(tiny_settings(loss_function="L11_loss", metrics=["mean_pred", "max_pred"]))
    before = model.evaluate(half_gain_batches(4, seed=100), 4)["loss"]
    epochs = [model.train_epoch(half_gain_batches(12, seed=epoch), 12, ignore) for epoch in range(3)]
    after = model.evaluate(half_gain_batches(4, seed=100), 4)
    assert set(epochs[0]) == {"loss", "mean_pred", "max_pred"}
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert after["loss"] < 0.5 * before
    # The raw mask the network learned is close to the true 0.5 gain (the DC row is always 0).
    mask = model.predict(next(half_gain_batches(1, seed=200))[0])
    assert abs(float(np.median(mask[:, 1:])) - 0.5) < 0.15


def test_on_batch_gets_every_step_with_running_means():
    model = build(tiny_settings())
    calls = []
    result = model.train_epoch(half_gain_batches(10), 3, lambda step, running: calls.append((step, dict(running))))
    assert [step for step, _ in calls] == [0, 1, 2]
    assert model.iterations == 3
    assert calls[-1][1] == pytest.approx(result)
    assert set(result) == {"loss", "mean_pred"}


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


def test_evaluate_leaves_weights_and_batch_norm_statistics_alone():
    model = build(tiny_settings(options=NORM_OPTIONS))
    before = {name: tensor.clone() for name, tensor in model.network.state_dict().items()}
    metrics = model.evaluate(half_gain_batches(3), 3)
    assert set(metrics) == {"loss", "mean_pred"}
    after = model.network.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert model.iterations == 0


def test_predict_returns_the_raw_network_output():
    model = build(tiny_settings(options=NORM_OPTIONS))
    inputs = np.random.default_rng(1).random((7, *INPUT_SHAPE), dtype=np.float32)
    outputs = model.predict(inputs)
    assert outputs.shape == inputs.shape and outputs.dtype == np.float32 and outputs.flags.c_contiguous
    model.network.eval()
    with torch.no_grad():
        direct = model.network(torch.from_numpy(inputs).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(outputs, direct, rtol=1e-5, atol=1e-6)
    assert np.all(outputs[:, 0] == 0), "the DC row is padded back with zeros"
    assert model.predict(inputs[:0]).shape == (0, *INPUT_SHAPE)


def test_weights_and_activations_are_channels_last():
    model = build(tiny_settings())
    kernels = [p for p in model.network.parameters() if p.dim() == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    batch = np.zeros((2, *INPUT_SHAPE), dtype=np.float32)
    tensor = model._tensor(batch)
    assert tensor.is_contiguous(memory_format=torch.channels_last)
    assert tensor.data_ptr() == torch.from_numpy(batch).data_ptr(), "an NHWC batch becomes NCHW without a copy"


def test_learning_rate_can_be_read_and_set():
    model = build(tiny_settings(optimizer=Optimizer(name="rmsprop", lr=0.01)))
    assert model.learning_rate == pytest.approx(0.01)
    model.learning_rate = 0.002
    assert model.learning_rate == pytest.approx(0.002)
    assert type(model.optimizer).__name__ == "RMSprop"


# The waveform losses train a waveform network: tests/torch/test_waveform_kit.py.
@pytest.mark.parametrize("loss", sorted(name for name, loss in LOSSES.items() if loss.definition.kind != "waveform"))
def test_every_seed_loss_trains_a_step(loss):
    model = build(tiny_settings(loss_function=loss))
    metrics = model.train_epoch(half_gain_batches(1), 1, ignore)
    assert np.isfinite(metrics["loss"])


def test_l11_loss_sums_and_l11_loss_mean_averages():
    """The seed's L11_loss sums |target - input * mask| over the batch; the mean variant divides by its size."""
    inputs, targets = next(half_gain_batches(1))
    summed = build(tiny_settings(loss_function="L11_loss")).evaluate([(inputs, targets)], 1)["loss"]
    mean = build(tiny_settings(loss_function="L11_loss_mean")).evaluate([(inputs, targets)], 1)["loss"]
    assert summed > 100 * mean
    # With an all-zero mask the loss is the target itself.
    model = build(tiny_settings(loss_function="L11_loss"))
    with torch.no_grad():
        model.network.mask.weight.zero_()
        model.network.mask.bias.zero_()
    assert model.evaluate([(inputs, targets)], 1)["loss"] == pytest.approx(float(targets.sum()), rel=1e-5)


def test_epoch_metrics_go_to_a_tensorboard_event_file(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = build(tiny_settings())
    model.write_scalars(tmp_path / "TensorBoard", 1, {"loss": 2.5, "val_loss": 3.0})
    model.write_scalars(tmp_path / "TensorBoard", 2, {"loss": 1.5, "val_loss": 2.0})
    events = EventAccumulator(str(tmp_path / "TensorBoard"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["loss", "val_loss"]
    assert [(event.step, event.value) for event in events.Scalars("loss")] == [(1, 2.5), (2, 1.5)]


def test_ddp_without_a_launcher_trains_alone_with_a_warning(caplog, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("unmix.torch.distributed._warned_single", False)
    model = build(tiny_settings(distribution="ddp"))
    with caplog.at_level("WARNING", logger="unmix"):
        model.train_epoch(half_gain_batches(2), 2, ignore)
    assert model.iterations == 2
    assert "not started by torchrun or `unmix train-ddp`" in caplog.text
