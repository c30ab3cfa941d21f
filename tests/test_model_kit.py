"""The model kit: a network plus declared options is a whole model, on both backends.

A plugin registered here in-process (as an entry point would be) supplies only a network class;
training, checkpoints, resume and separation must come from the kit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_unmix
from tests.training_fixtures import write_configuration, write_seed_collection
from unmix.core import ModelError, Option, hookimpl
from unmix.core.config.loader import load_configuration
from unmix.core.models.networks import NetworkModel
from unmix.core.models.options import option_defaults, read_declared_options
from unmix.core.plugins import plugin_manager
from unmix.core.training.callbacks import read_results

DECLARED = [
    Option("width", 8, "hidden units", minimum=1),
    Option("group.rate", 0.5, "a grouped rate", minimum=0.0, below=1.0),
    Option("shape", "flat", "a choice", choices=["flat", "round"]),
]


def test_declared_options_give_nested_defaults_and_fill_what_a_file_leaves_out():
    assert option_defaults(DECLARED) == {"width": 8, "group": {"rate": 0.5}, "shape": "flat"}
    read = read_declared_options("toy", DECLARED, {"group": {"rate": 0.25}}, (9, 4, 1))
    assert read == {"width": 8, "group": {"rate": 0.25}, "shape": "flat"}


@pytest.mark.parametrize(("given", "message"), [
    ({"widht": 3}, "training.model.options.widht: model 'toy' has no option 'widht' (did you mean 'width'?)"),
    ({"width": 0}, "training.model.options.width is 0; it must be at least 1"),
    ({"width": 2.5}, "training.model.options.width must be a whole number, not 2.5"),
    ({"group": {"rate": 1.0}}, "training.model.options.group.rate is 1.0; it must be at least 0.0 and below 1.0"),
    ({"shape": "square"}, "training.model.options.shape is 'square'; it must be one of 'flat', 'round'"),
])
def test_a_bad_option_is_one_line_naming_the_key(given, message):
    with pytest.raises(ModelError) as error:
        read_declared_options("toy", DECLARED, given, (9, 4, 1))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_models_own_check_sees_every_option_and_the_window():
    def check(options, input_shape):
        if input_shape[1] % options["width"]:
            raise ModelError(f"window {input_shape[1]} is not a multiple of width {options['width']}")

    read_declared_options("toy", DECLARED, {"width": 4}, (9, 8, 1), check)
    with pytest.raises(ModelError, match="window 8 is not a multiple of width 3"):
        read_declared_options("toy", DECLARED, {"width": 3}, (9, 8, 1), check)


def test_unmixs_own_models_register_through_the_public_kit():
    from unmix.tf.kit import KerasNetworkModel
    from unmix.torch.kit import TorchNetworkModel

    models = plugin_manager().registry("models")
    for name in ("torch:hourglass", "torch:band-hourglass"):
        assert type(models.get(name)) is TorchNetworkModel
    for name in ("tensorflow:hourglass", "tensorflow:band-hourglass", "tensorflow:rnn", "tensorflow:unet"):
        assert type(models.get(name)) is KerasNetworkModel
    assert all(isinstance(registration.thing, NetworkModel) for registration in models
               if registration.plugin in ("tf", "torch"))


def torch_gain_network(options, input_shape):
    """One learned gain per bin and channel: the smallest torch network that learns a mask."""
    import torch

    bins, _frames, channels = input_shape

    class Gains(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gains = torch.nn.Parameter(torch.full((channels, bins, 1), options["start"]))

        def forward(self, mix_magnitude: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.gains).expand_as(mix_magnitude)

    return Gains()


class TorchKitPlugin:
    @hookimpl
    def register_models(self, register):
        from unmix.torch import kit

        kit.register_network(register, "kit-gains", torch_gain_network,
                             options=[Option("start", 0.0, "initial gain before the sigmoid")])


@pytest.fixture(scope="module")
def kit_plugin():
    manager = plugin_manager()
    if "kit-test" not in manager.infos:
        manager.register(TorchKitPlugin(), "kit-test", distribution="unmix-kit-test", version="1.2.3")
    return manager


def test_a_network_registered_through_the_kit_trains_resumes_and_separates(kit_plugin, tmp_path):
    from unmix.core.api import create_engine, separate
    from unmix.core.training.driver import train

    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=1.5)
    configuration = write_configuration(tmp_path / "kit.jsonc", collection, "kit-gains", epochs=2, backend="torch",
                                        start=0.5)
    run = train(configuration, working_directory=tmp_path).path
    described = json.loads((run / "model.json").read_text())
    assert described["backend"] == "torch" and described["model"] == "kit-gains"
    assert (run / "weights" / "last.pt").is_file() and (run / "weights" / "best.pt").is_file()
    assert described["trainable_parameters"] == 129, "one gain per bin (fft_length 256) and channel"
    assert "trainable parameters: 129" in (run / "logs.txt").read_text()

    saved = json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])
    saved["training"]["epoch"]["count"] = 3
    (run / "configuration.jsonc").write_text(json.dumps(saved))
    train("", resume=run)
    assert [row["epoch"] for row in read_results(run / "results.csv")] == [1, 2, 3]

    mix = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
    target, rest = separate(create_engine(run), mix, 8000)
    assert target.shape == mix.shape and np.max(np.abs(target + rest - mix)) < 1e-4


def test_unmix_models_lists_each_model_with_its_options_and_distribution():
    result = run_unmix("models", "--json")
    listed = {f"{model['backend']}:{model['name']}": model for model in json.loads(result.stdout)}
    band = listed["torch:band-hourglass"]
    assert band["distribution"] == "unmix-torch" and band["plugin"] == "torch"
    assert {option["name"]: option["default"] for option in band["options"]} == {
        "bands": 256, "stacks": 3, "filters": 256, "kernel_size": 3, "dropoutfactor": 0.0, "mixed_precision": False}
    text = run_unmix("models").stdout
    assert "torch:band-hourglass (unmix-torch" in text
    assert "  stacks = 3 (>= 1): how many times the hourglass halves the window along time" in text


def test_config_show_fills_in_the_models_declared_defaults(tmp_path):
    configuration = tmp_path / "band.jsonc"
    configuration.write_text(json.dumps({"base": "quickstart.jsonc", "training": {
        "backend": "torch", "model": {"name": "band-hourglass", "options!": {"bands": 32}}}}))
    shown = json.loads(run_unmix("config", "show", str(configuration)).stdout)
    assert shown["training"]["model"]["options"] == {
        "bands": 32, "stacks": 3, "filters": 256, "kernel_size": 3, "dropoutfactor": 0.0, "mixed_precision": False}
    assert load_configuration(configuration).settings.training.model.options == {"bands": 32}


def test_config_check_refuses_a_declared_options_bad_value_in_one_line(tmp_path):
    configuration = tmp_path / "band.jsonc"
    configuration.write_text(json.dumps({"base": "quickstart.jsonc", "training": {
        "backend": "torch", "model": {"name": "band-hourglass", "options": {"kernel_sise": 3}}}}))
    result = run_unmix("config", "check", str(configuration))
    assert_one_line_error(result, "band.jsonc", "no option 'kernel_sise'", "did you mean 'kernel_size'?")


def keras_gain_network(options, input_shape):
    """One learned gain per bin and channel, in Keras."""
    import keras

    class Gains(keras.layers.Layer):
        def build(self, shape):
            self.gains = self.add_weight(shape=(shape[1], 1, shape[3]), initializer="zeros", name="gains")

        def call(self, mix_magnitude):
            return keras.ops.sigmoid(self.gains + options["start"]) * keras.ops.ones_like(mix_magnitude)

    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, Gains()(inputs))


class KerasKitPlugin:
    @hookimpl
    def register_models(self, register):
        from unmix.tf import kit

        kit.register_network(register, "kit-gains", keras_gain_network,
                             options=[Option("start", 0.0, "initial gain before the sigmoid")])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")
def test_a_keras_network_registered_through_the_kit_trains_and_separates(tmp_path):
    from unmix.core.api import create_engine, separate
    from unmix.core.training.driver import train

    manager = plugin_manager()
    if "keras-kit-test" not in manager.infos:
        manager.register(KerasKitPlugin(), "keras-kit-test", distribution="unmix-keras-kit-test", version="0.1")
    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=1.5)
    configuration = write_configuration(tmp_path / "kit.jsonc", collection, "kit-gains", epochs=2,
                                        backend="tensorflow", start=0.5)
    run = train(configuration, working_directory=tmp_path).path
    assert json.loads((run / "model.json").read_text())["trainable_parameters"] == 129
    assert (run / "weights" / "last.keras").is_file()
    mix = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
    target, rest = separate(create_engine(run), mix, 8000)
    assert target.shape == mix.shape and np.max(np.abs(target + rest - mix)) < 1e-4
