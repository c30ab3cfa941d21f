"""The band hourglass (unmix's CPU-first model) on each backend: same parameter count from the shipped
configuration, trains, saves and loads, bounded masks, clear option errors. That both backends are one
network (Keras weights copied into torch give the same masks) is shown in tests/cross_backend/."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from tests.helpers import CONFIGURATIONS
from tests.tiny_models import build, half_gain_batches, ignore, tiny_settings
from unmix.core.config.loader import load_configuration
from unmix.core.errors import ModelError

# Keras' own saving code converts variables in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

BACKENDS = ["tensorflow", "torch"]
TINY = {"bands": 16, "stacks": 2, "filters": 8}
SUFFIX = {"tensorflow": ".keras", "torch": ".pt"}
@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("relative", ["cpu/band-hourglass.jsonc", "quickstart.jsonc"])
def test_shipped_configuration_builds_with_its_pinned_parameter_count(backend, relative):
    settings = load_configuration(CONFIGURATIONS / relative, environment={}).settings
    settings = attrs.evolve(settings, training=attrs.evolve(settings.training, backend=backend))
    assert settings.training.model.name == "band-hourglass"
    assert settings.spectrogram_generation.fft_length == 3072
    model = build(settings, (1537, 64, 1))
    assert model.trainable_parameters() == 2_896_388


@pytest.mark.slow
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
