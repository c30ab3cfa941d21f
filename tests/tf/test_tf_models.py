"""Building the Keras networks: the seed's parameter counts, every shipped configuration, option errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import CONFIGURATIONS
from tests.tiny_models import INPUT_SHAPE, build, tiny_settings
from unmix.core.config.loader import load_configuration
from unmix.core.config.schema import Configuration, Optimizer
from unmix.core.errors import ModelError, PluginError, UnmixError
from unmix.core.plugins import plugin_manager
from unmix.tf.plugin import FRAME_NETWORKS, WINDOW_NETWORKS


def input_shape_of(settings: Configuration) -> tuple[int, int, int]:
    return (settings.spectrogram_generation.fft_length // 2 + 1, settings.transformation.options.size,
            settings.channels)


def build_shipped(relative: str):
    settings = load_configuration(CONFIGURATIONS / relative, environment={}).settings
    return build(settings, input_shape_of(settings))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("configuration", "parameters"),
    [
        ("splitstrument/guitar_full.jsonc", 7_713_857),
        ("final/hourglass-final.jsonc", 12_546_689),
        ("default-hourglass.jsonc", 8_994_561),
    ],
)
def test_hourglass_has_the_seeds_parameter_count(configuration, parameters):
    model = build_shipped(configuration)
    assert model.network.input_shape[1:] == (769, 64, 1)
    assert model.trainable_parameters() == parameters
    assert f"Trainable params: {parameters:,}" in model.summary()


def test_hourglass_has_the_seeds_layers():
    """The shipped guitar model.json: 27 Conv2D, 25 BN, 26 Dropout, 6 of each pooling, upsampling and add."""
    model = build_shipped("splitstrument/guitar_full.jsonc")
    kinds = [type(layer).__name__ for layer in model.network.layers]
    counts = {kind: kinds.count(kind) for kind in ("Conv2D", "BatchNormalization", "Dropout", "MaxPooling2D",
                                                   "UpSampling2D", "Add")}
    assert counts == {"Conv2D": 27, "BatchNormalization": 25, "Dropout": 26, "MaxPooling2D": 6,
                      "UpSampling2D": 6, "Add": 6}


SHIPPED = sorted(
    str(path.relative_to(CONFIGURATIONS))
    for path in [*CONFIGURATIONS.glob("default-*.jsonc"), *CONFIGURATIONS.glob("mini/*.jsonc")]
)


@pytest.mark.slow
@pytest.mark.parametrize("configuration", SHIPPED)
def test_every_shipped_default_and_mini_configuration_builds(configuration):
    settings = load_configuration(CONFIGURATIONS / configuration, environment={}).settings
    model = build(settings, input_shape_of(settings))
    bins, frames, channels = input_shape_of(settings)
    expected_frames = settings.transformation.options.step if settings.training.model.name in FRAME_NETWORKS \
        else frames
    assert model.network.output_shape[1:] == (bins, expected_frames, channels)
    assert model.trainable_parameters() > 0


def test_hourglass_follows_fft_length_and_stereo():
    settings = tiny_settings(fft_length=256, frames=16, stereo=True)
    model = build(settings, (129, 16, 2))
    assert model.network.input_shape[1:] == (129, 16, 2)
    assert model.network.output_shape[1:] == (129, 16, 2)


def test_registers_every_seed_model_without_importing_tensorflow():
    names = {name.lower() for name in plugin_manager().registry("models").names()}
    assert {f"tensorflow:{name}" for name in [*WINDOW_NETWORKS, *FRAME_NETWORKS]} <= names
    probe = (
        "import sys, unmix.tf.plugin\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def one_line_error(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("options", "input_shape", "expected"),
    [
        ({"stacks": 6}, (501, 64, 1), "fft_length 1000"),
        ({"stacks": 6}, (769, 40, 1), "transformation.options.size 40 is not a multiple of 64"),
        ({"stack": 2}, INPUT_SHAPE, "did you mean 'stacks'"),
        ({"hg_module": {"filterz": 8}}, INPUT_SHAPE, "training.model.options.hg_module.filterz"),
        ({"stacks": "two"}, INPUT_SHAPE, "training.model.options.stacks must be a whole number"),
        ({"stacks": 2, "hg_module": {"dropoutfactor": 1.5}}, INPUT_SHAPE, "dropoutfactor is 1.5"),
        ({"stacks": 0}, INPUT_SHAPE, "training.model.options.stacks is 0"),
        ({"stacks": 2, "mixed_precision": "yes"}, INPUT_SHAPE, "mixed_precision must be true or false"),
    ],
)
def test_options_that_do_not_fit_are_one_clear_line(options, input_shape, expected):
    with pytest.raises(ModelError) as error:
        build(tiny_settings(options=options), input_shape)
    assert expected in one_line_error(error)


def test_fft_length_error_names_a_length_that_works():
    with pytest.raises(ModelError) as error:
        build(tiny_settings(options={"stacks": 6}), (501, 64, 1))
    assert "multiple of 128" in one_line_error(error)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (tiny_settings(loss_function="L1_loss"), "unknown loss 'L1_loss' (did you mean 'L11_loss'?); known losses:"),
        (tiny_settings(optimizer=Optimizer(name="sgd", lr=0.1)), "unknown optimiser 'sgd'; known optimisers: adam,"),
        (tiny_settings(metrics=["mean_prediction"]), "unknown metric 'mean_prediction'"),
        (tiny_settings(distribution="ddp"), "'ddp' is PyTorch's"),
    ],
)
def test_unknown_names_list_the_known_ones(settings, expected):
    with pytest.raises(ModelError) as error:
        build(settings)
    assert expected in one_line_error(error)


def test_unknown_model_lists_the_known_models():
    with pytest.raises(PluginError) as error:
        plugin_manager().get("models", "tensorflow:hourglas")
    message = one_line_error(error)
    assert "did you mean 'tensorflow:hourglass'" in message
    assert "tensorflow:unet [tf]" in message


def test_mask_loss_needs_a_network_that_outputs_the_whole_window():
    # The mask network predicts transformation.options.step (8) frames of a 9-frame window.
    with pytest.raises(ModelError) as error:
        build(tiny_settings("mask", {}, loss_function="L11_loss", frames=8), (65, 9, 1))
    assert "multiplies the output by the input window" in one_line_error(error)


def test_unknown_option_of_an_optionless_model():
    with pytest.raises(UnmixError) as error:
        build(tiny_settings("unet", {"depth": 3}), (65, 16, 1))
    assert "model 'unet' has no option 'depth'; its options are: mixed_precision" in one_line_error(error)


def test_multi_worker_without_tf_config_is_refused(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ModelError) as error:
        build(tiny_settings(distribution="multi_worker"))
    assert "TF_CONFIG" in one_line_error(error)

