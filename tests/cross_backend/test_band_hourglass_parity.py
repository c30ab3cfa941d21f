"""The band hourglass is one network on both backends: Keras weights copied into torch give the same masks.

The per-backend checks of the band hourglass (parameter counts, training, saving, option errors) are in
tests/test_band_hourglass.py; here the Keras batch-norm statistics are made non-trivial, the weights are
copied with `unmix.torch.convert`, and both networks predict in inference mode on the same windows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import build_network
from unmix.core.errors import ModelError
from unmix.torch.convert import copy_keras_weights

# Keras' own saving code converts variables in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

# Three stacks and a kernel of 5 cover the recursion and the kernel layout; dropout is off in inference.
PARITY_OPTIONS = {"bands": 12, "stacks": 3, "filters": 10, "kernel_size": 5, "dropoutfactor": 0.2}
PARITY_TOLERANCE = 1e-4


def build_band_hourglass(options, shape):
    return build_network("torch:band-hourglass", options, shape)


def build_keras_band_hourglass(options, shape):
    return build_network("tensorflow:band-hourglass", options, shape)


def randomise_batch_norm_statistics(keras_network, rng: np.random.Generator) -> None:
    """Fresh statistics (mean 0, variance 1) would hide a wrong epsilon or a swapped mean and variance."""
    for layer in keras_network.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.05, 2.0, variance.shape)])


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
def test_keras_weights_in_the_torch_band_hourglass_give_the_same_masks(channels):
    rng = np.random.default_rng(channels)
    shape = (33, 16, channels)
    keras_network = build_keras_band_hourglass(PARITY_OPTIONS, shape)
    randomise_batch_norm_statistics(keras_network, rng)
    network = build_band_hourglass(PARITY_OPTIONS, shape)
    copy_keras_weights(network, keras_network)
    network.eval()
    # Magnitudes up to 10, so errors are not hidden by tiny values.
    windows = 10 * rng.random((4, *shape), dtype=np.float32)
    keras_masks = np.asarray(keras_network(windows, training=False))
    with torch.no_grad():
        torch_masks = network(torch.from_numpy(windows).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    difference = float(np.max(np.abs(keras_masks - torch_masks)))
    print(f"max abs difference {difference:.3g}")
    assert keras_masks.shape == torch_masks.shape == (4, *shape)
    assert np.std(keras_masks) > 0.05, "a constant mask would match anything"
    assert difference <= PARITY_TOLERANCE


def test_weights_of_a_band_hourglass_with_other_options_are_refused():
    shape = (33, 16, 1)
    keras_network = build_keras_band_hourglass({**PARITY_OPTIONS, "stacks": 2}, shape)
    with pytest.raises(ModelError) as error:
        copy_keras_weights(build_band_hourglass(PARITY_OPTIONS, shape), keras_network)
    assert "same training.model.options" in str(error.value)
