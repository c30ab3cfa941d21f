"""Building the torch hourglass: the seed's parameter counts from the shipped configurations, option errors."""

from __future__ import annotations

import json
import subprocess
import sys

import attrs
import pytest
from torch import nn

from tests.helpers import CONFIGURATIONS
from tests.torch.tiny import INPUT_SHAPE, build, tiny_settings
from unmix.core.config.loader import load_configuration
from unmix.core.config.schema import Configuration, Optimizer
from unmix.core.errors import ModelError, PluginError
from unmix.core.interfaces import SeparationModel
from unmix.core.plugins import plugin_manager


def shipped(relative: str) -> tuple[Configuration, tuple[int, int, int]]:
    """A shipped configuration switched to the torch backend, as `"training": {"backend": "torch"}` would."""
    settings = load_configuration(CONFIGURATIONS / relative, environment={}).settings
    settings = attrs.evolve(settings, training=attrs.evolve(settings.training, backend="torch"))
    shape = (settings.spectrogram_generation.fft_length // 2 + 1, settings.transformation.options.size,
             settings.channels)
    return settings, shape


@pytest.mark.parametrize(
    ("configuration", "parameters"),
    [
        ("splitstrument/guitar_full.jsonc", 7_713_857),
        ("final/hourglass-final.jsonc", 12_546_689),
        ("default-hourglass.jsonc", 8_994_561),
    ],
)
def test_hourglass_has_the_seeds_parameter_count(configuration, parameters):
    settings, shape = shipped(configuration)
    model = build(settings, shape)
    assert isinstance(model, SeparationModel)
    assert (model.backend, model.checkpoint_suffix) == ("torch", ".pt")
    assert shape == (769, 64, 1)
    assert model.trainable_parameters() == parameters
    assert f"Trainable params: {parameters:,}" in model.summary()


def test_a_child_configuration_selects_the_torch_backend(tmp_path):
    child = tmp_path / "guitar-torch.jsonc"
    base = (CONFIGURATIONS / "splitstrument" / "guitar_full.jsonc").as_posix()
    child.write_text(json.dumps({"base": base, "training": {"backend": "torch"}}))
    settings = load_configuration(child, environment={}).settings
    assert settings.training.backend == "torch"
    assert build(settings, (769, 64, 1)).trainable_parameters() == 7_713_857


def test_hourglass_has_the_seeds_layers():
    """The shipped guitar model.json: 27 Conv2D and 25 batch norms (the 1x1 head convolution has none)."""
    settings, shape = shipped("splitstrument/guitar_full.jsonc")
    kinds = [type(layer) for layer in build(settings, shape).network.modules()]
    assert (kinds.count(nn.Conv2d), kinds.count(nn.BatchNorm2d), kinds.count(nn.Dropout)) == (27, 25, 26)


def test_small_hourglass_builds_its_narrow_front_and_head():
    settings, shape = shipped("cpu/small-hourglass.jsonc")
    network = build(settings, shape).network
    assert [block.conv.out_channels for block in network.initial] == [8, 16, 16, 16, 32]
    assert network.mask.in_channels == 32


def test_mini_configuration_builds_with_the_window_shape():
    settings, shape = shipped("mini/mini-hourglass-stereo.jsonc")
    model = build(settings, shape)
    assert model.description["input_shape"] == list(shape) and shape[2] == 2
    assert "(769, 64, 2)" in model.summary()


def test_registers_the_hourglass_without_importing_torch():
    assert "torch:hourglass" in plugin_manager().registry("models")
    probe = "import sys, unmix.torch.plugin\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'torch'}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def one_line_error(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("options", "input_shape", "expected"),
    [
        ({"stacks": 6}, (501, 64, 1), "multiple of 128 or fewer stacks"),
        ({"stacks": 6}, (769, 40, 1), "transformation.options.size 40 is not a multiple of 64"),
        ({"stack": 2}, INPUT_SHAPE, "did you mean 'stacks'"),
        ({"hg_module": {"filterz": 8}}, INPUT_SHAPE, "training.model.options.hg_module.filterz"),
        ({"stacks": "two"}, INPUT_SHAPE, "training.model.options.stacks must be a whole number"),
        ({"stacks": 2, "hg_module": {"dropoutfactor": 1.5}}, INPUT_SHAPE, "dropoutfactor is 1.5"),
        ({"stacks": 0}, INPUT_SHAPE, "training.model.options.stacks is 0"),
        ({"stacks": 2, "mixed_precision": "yes"}, INPUT_SHAPE, "mixed_precision must be true or false"),
        ({"initial_convolutions": {"filters": [8, 8]}}, INPUT_SHAPE, "must list 5 positive whole numbers"),
        ({"hg_module_end": {"filters": 0}}, INPUT_SHAPE, "training.model.options.hg_module_end.filters is 0"),
    ],
)
def test_options_that_do_not_fit_are_one_clear_line(options, input_shape, expected):
    with pytest.raises(ModelError) as error:
        build(tiny_settings(options=options), input_shape)
    assert expected in one_line_error(error)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (tiny_settings(loss_function="L1_loss"), "unknown loss 'L1_loss' (did you mean 'L11_loss'?); known losses:"),
        (tiny_settings(optimizer=Optimizer(name="sgd", lr=0.1)), "unknown optimiser 'sgd'; known optimisers: adam,"),
        (tiny_settings(metrics=["mean_prediction"]), "unknown metric 'mean_prediction'"),
        (tiny_settings(distribution="mirrored"), "'mirrored' is TensorFlow's; the torch models use 'ddp'"),
    ],
)
def test_unknown_names_list_the_known_ones(settings, expected):
    with pytest.raises(ModelError) as error:
        build(settings)
    assert expected in one_line_error(error)


def test_unknown_torch_model_lists_the_known_models():
    with pytest.raises(PluginError) as error:
        plugin_manager().get("models", "torch:hourglas")
    message = one_line_error(error)
    assert "did you mean 'torch:hourglass'" in message and "torch:hourglass [torch]" in message


def test_loss_names_match_case_insensitively():
    model = build(tiny_settings(loss_function="l11_loss", metrics=["MEAN_PRED"]))
    assert model.description["loss_function"] == "l11_loss"
