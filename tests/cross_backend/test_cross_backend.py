"""The Keras and the PyTorch hourglass are one network: copied weights give the same mask.

Both networks are built from the same options (batch norm in every group, stereo, so kernels with
more than one input and output channel are covered), the Keras batch-norm statistics are made
non-trivial, the weights are copied with `unmix.torch.convert`, and both predict in inference
mode on one random window. Also: each backend refuses the other's checkpoint with one line.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")
# Keras' own saving code converts variables in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")
pytest.importorskip("unmix.tf.hourglass")

from tests.helpers import CONFIGURATIONS, build_network  # noqa: E402
from tests.torch.tiny import build, half_gain_batches, ignore, tiny_settings  # noqa: E402
from unmix.core.config.loader import load_configuration  # noqa: E402
from unmix.core.errors import ModelError  # noqa: E402
from unmix.core.errors import ModelError as KerasModelError  # noqa: E402
from unmix.core.plugins import plugin_manager  # noqa: E402
from unmix.torch.convert import copy_keras_weights  # noqa: E402

# Narrow front and head widths keep the test fast and cover those options; the seed's widths are
# covered by the parameter counts (tests/torch/test_torch_models.py).
OPTIONS = {
    "stacks": 3,
    "initial_convolutions": {"filters": [8, 16, 16, 12, 24], "batchnormalization": True, "dropoutfactor": 0.2},
    "hg_module": {"filters": 12, "batchnormalization": True, "dropoutfactor": 0.2},
    "hg_module_end": {"filters": 20, "batchnormalization": True, "dropoutfactor": 0.2},
}
INPUT_SHAPE = (129, 16, 2)
TOLERANCE = 1e-4


def build_hourglass(options, shape):
    return build_network("torch:hourglass", options, shape)


def build_keras_hourglass(options, shape):
    return build_network("tensorflow:hourglass", options, shape)


def randomise_batch_norm_statistics(network, rng: np.random.Generator) -> None:
    """Fresh statistics (mean 0, variance 1) would hide a wrong epsilon or a swapped mean and variance."""
    for layer in network.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.05, 2.0, variance.shape)])


def test_keras_weights_in_the_torch_hourglass_give_the_same_mask():
    rng = np.random.default_rng(0)
    keras_network = build_keras_hourglass(OPTIONS, INPUT_SHAPE)
    randomise_batch_norm_statistics(keras_network, rng)
    network = build_hourglass(OPTIONS, INPUT_SHAPE).to(memory_format=torch.channels_last)
    copy_keras_weights(network, keras_network)
    network.eval()
    # Magnitudes up to 10 (a window normalised by its maximum is at most 1), so errors are not hidden by tiny values.
    window = 10 * rng.random((3, *INPUT_SHAPE), dtype=np.float32)
    keras_mask = np.asarray(keras_network(window, training=False))
    with torch.no_grad():
        torch_mask = network(torch.from_numpy(window).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    difference = float(np.max(np.abs(keras_mask - torch_mask)))
    print(f"max abs difference {difference:.3g} (mask values up to {np.max(np.abs(keras_mask)):.3g})")
    assert keras_mask.shape == torch_mask.shape == (3, *INPUT_SHAPE)
    assert np.max(np.abs(keras_mask)) > 0.1, "a mask of zeros would match anything"
    assert difference < TOLERANCE
    assert sum(p.numel() for p in network.parameters()) == keras_network.count_params() - sum(
        int(np.prod(w.shape)) for w in keras_network.non_trainable_weights)


@pytest.mark.slow
@pytest.mark.parametrize("configuration", ["cpu/small-hourglass.jsonc", "mini/mini-hourglass.jsonc"])
def test_shipped_configurations_have_equal_parameter_counts_in_both_backends(configuration):
    settings = load_configuration(CONFIGURATIONS / configuration, environment={}).settings
    options = settings.training.model.options
    shape = (settings.spectrogram_generation.fft_length // 2 + 1, settings.transformation.options.size,
             settings.channels)
    keras_network = build_keras_hourglass(options, shape)
    keras_trainable = sum(int(np.prod(weight.shape)) for weight in keras_network.trainable_weights)
    network = build_hourglass(options, shape)
    assert sum(parameter.numel() for parameter in network.parameters()) == keras_trainable
    statistics = sum(buffer.numel() for buffer in network.buffers() if buffer.is_floating_point())
    assert statistics == sum(int(np.prod(weight.shape)) for weight in keras_network.non_trainable_weights)


def test_weights_of_a_network_with_other_options_are_refused():
    keras_network = build_keras_hourglass({**OPTIONS, "stacks": 2}, INPUT_SHAPE)
    with pytest.raises(ModelError) as error:
        copy_keras_weights(build_hourglass(OPTIONS, INPUT_SHAPE), keras_network)
    assert "same training.model.options" in str(error.value)


# Trains a step on each backend and saves it; its two users are slow.
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A real checkpoint of each backend, from the tiny hourglass after one step."""
    folder = tmp_path_factory.mktemp("checkpoints")
    torch_model = build(tiny_settings())
    torch_model.train_epoch(half_gain_batches(1), 1, ignore)
    torch_model.save_checkpoint(folder / "last.pt")
    keras_settings = tiny_settings(backend="tensorflow")
    keras_model = plugin_manager().get("models", "tensorflow:hourglass")(keras_settings, (65, 8, 1))
    keras_model.save_checkpoint(folder / "last.keras")
    return folder


@pytest.mark.slow
def test_torch_refuses_a_keras_checkpoint_naming_the_backend(checkpoints, tmp_path):
    renamed = tmp_path / "last.pt"
    renamed.write_bytes((checkpoints / "last.keras").read_bytes())
    for path in (checkpoints / "last.keras", renamed):
        with pytest.raises(ModelError) as error:
            build(tiny_settings()).load_checkpoint(path)
        assert "written by the Keras backend (unmix-tf)" in str(error.value)


@pytest.mark.slow
def test_keras_refuses_a_torch_checkpoint_naming_the_backend(checkpoints):
    keras_model = plugin_manager().get("models", "tensorflow:hourglass")(tiny_settings(backend="tensorflow"),
                                                                         (65, 8, 1))
    with pytest.raises(KerasModelError) as error:
        keras_model.load_checkpoint(checkpoints / "last.pt")
    assert "PyTorch backend (unmix-torch)" in str(error.value)
