"""Core declares the losses and metrics once; both backends must implement exactly those, alike.

The same random arrays go through each backend's formula, and the two values must agree: a
formula edited in one backend only (a clamp, a sum instead of a mean) fails here, before it shows
up as results.csv files that differ by backend. The values run from -1 to 2 so that the clamps
(logarithms, hinge, cross-entropy) are exercised, not only the smooth middle. The waveform losses
are the torch backend's only (the Keras kit trains no waveform networks): tests/torch/test_waveform_kit.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")

from unmix.core.errors import ModelError  # noqa: E402
from unmix.core.models.losses import (  # noqa: E402
    LOSS_FORMULAS,
    LOSSES,
    METRIC_FORMULAS,
    METRICS,
    SPECTROGRAM_LOSS_FORMULAS,
)
from unmix.tf import losses as tf_losses  # noqa: E402
from unmix.torch import losses as torch_losses  # noqa: E402

TOLERANCE = 1e-5
SHAPE = (2, 9, 4, 1)


def random_arrays(count: int, seed: int) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    return [generator.uniform(-1.0, 2.0, SHAPE).astype(np.float32) for _ in range(count)]


def test_each_backend_implements_exactly_the_tables_losses_and_metrics():
    assert set(torch_losses.LOSS_FORMULAS) == LOSS_FORMULAS
    assert set(tf_losses.LOSS_FORMULAS) == SPECTROGRAM_LOSS_FORMULAS
    with pytest.raises(ModelError, match="the tensorflow backend trains no waveform networks"):
        tf_losses.get_loss("multi_resolution_stft")
    for backend in (tf_losses, torch_losses):
        assert set(backend.METRIC_FORMULAS) == METRIC_FORMULAS, backend.__name__


@pytest.mark.parametrize("name", [loss.name for loss in LOSSES if loss.kind != "waveform"])
@pytest.mark.parametrize("seed", [0, 1])
def test_both_backends_give_the_same_loss(name, seed):
    targets, outputs, inputs = random_arrays(3, seed)
    keras_value = float(tf_losses.get_loss(name).function(tf.constant(targets), tf.constant(outputs),
                                                          tf.constant(inputs)))
    torch_value = float(torch_losses.get_loss(name).function(torch.from_numpy(targets), torch.from_numpy(outputs),
                                                             torch.from_numpy(inputs)))
    assert np.isfinite(keras_value)
    assert torch_value == pytest.approx(keras_value, rel=TOLERANCE, abs=TOLERANCE)


@pytest.mark.parametrize("name", [metric.name for metric in METRICS])
def test_both_backends_give_the_same_metric(name):
    (outputs,) = random_arrays(1, seed=2)
    keras_value = float(tf_losses.get_metric(name).function(tf.constant(outputs)))
    torch_value = float(torch_losses.get_metric(name).function(torch.from_numpy(outputs)))
    assert torch_value == pytest.approx(keras_value, rel=TOLERANCE, abs=TOLERANCE)
