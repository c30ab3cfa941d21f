"""The band hourglass (unmix's CPU-first model) on both backends: one network (Keras weights copied into
torch give the same masks), same parameter count from the shipped configuration, trains, saves and
loads, bounded masks, clear option errors."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from tests.helpers import CONFIGURATIONS
from tests.tiny_models import build, half_gain_batches, ignore, tiny_settings
from unmix.core.config import load_configuration
from unmix.core.errors import ModelError
from unmix.tf.band_hourglass import build_band_hourglass as build_keras_band_hourglass
from unmix.torch.band_hourglass import build_band_hourglass
from unmix.torch.convert import copy_keras_weights

# Keras' own saving code converts variables in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

BACKENDS = ["tensorflow", "torch"]
TINY = {"bands": 16, "stacks": 2, "filters": 8}
SUFFIX = {"tensorflow": ".keras", "torch": ".pt"}
# Three stacks and a kernel of 5 cover the recursion and the kernel layout; dropout is off in inference.
PARITY_OPTIONS = {"bands": 12, "stacks": 3, "filters": 10, "kernel_size": 5, "dropoutfactor": 0.2}
PARITY_TOLERANCE = 1e-4


def randomise_batch_norm_statistics(keras_network, rng: np.random.Generator) -> None:
    """Fresh statistics (mean 0, variance 1) would hide a wrong epsilon or a swapped mean and variance."""
    for layer in keras_network.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.05, 2.0, variance.shape)])


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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("relative", ["cpu/band-hourglass.jsonc", "quickstart.jsonc"])
def test_shipped_configuration_builds_with_its_pinned_parameter_count(backend, relative):
    settings = load_configuration(CONFIGURATIONS / relative, environment={}).settings
    settings = attrs.evolve(settings, training=attrs.evolve(settings.training, backend=backend))
    assert settings.training.model.name == "band-hourglass"
    model = build(settings, (769, 64, 1))
    assert model.trainable_parameters() == 2_500_100


@pytest.mark.parametrize("backend", BACKENDS)
def test_trains_two_steps_saves_and_loads(tmp_path, backend):
    settings = tiny_settings("band-hourglass", TINY, backend=backend)
    model = build(settings)
    metrics = model.train_epoch(half_gain_batches(2, seed=3), 2, ignore)
    assert np.isfinite(metrics["loss"])
    checkpoint = tmp_path / f"last{SUFFIX[backend]}"
    model.save_checkpoint(checkpoint)

    reloaded = build(settings)
    reloaded.load_checkpoint(checkpoint)
    windows = next(half_gain_batches(1, seed=4, batch_size=3))[0]
    masks = model.predict(windows)
    assert masks.shape == windows.shape
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    np.testing.assert_allclose(reloaded.predict(windows), masks, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stereo_windows_give_one_mask_per_channel(backend):
    settings = tiny_settings("band-hourglass", TINY, backend=backend, stereo=True)
    shape = (65, 8, 2)
    windows = next(half_gain_batches(1, batch_size=2, shape=shape))[0]
    assert build(settings, shape).predict(windows).shape == windows.shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stacks": 4}, "transformation.options.size 8 is not a multiple of 16"),
        ({"kernel_size": 4}, "kernel_size is 4; it must be odd"),
        ({"bands": 0}, "training.model.options.bands is 0; it must be at least 1"),
        ({"band": 8}, "has no option 'band' (did you mean 'bands'?)"),
    ],
)
def test_bad_options_are_one_clear_error(backend, options, message):
    with pytest.raises(ModelError) as raised:
        build(tiny_settings("band-hourglass", options, backend=backend))
    assert message in str(raised.value)
