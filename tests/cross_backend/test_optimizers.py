"""Core declares the optimisers and their Keras hyper-parameters once; both backends must build them so."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")

from unmix.core.models.optimizers import OPTIMIZERS  # noqa: E402
from unmix.tf import optimizers as tf_optimizers  # noqa: E402
from unmix.torch import optimizers as torch_optimizers  # noqa: E402

# What each Keras setting is called in PyTorch's optimiser defaults, and how to read it there.
TORCH_SETTINGS = {
    "beta_1": lambda defaults: defaults["betas"][0],
    "beta_2": lambda defaults: defaults["betas"][1],
    "rho": lambda defaults: defaults["alpha"],
    "epsilon": lambda defaults: defaults["eps"],
}


def test_each_backend_implements_exactly_the_tables_optimisers():
    names = {optimizer.name for optimizer in OPTIMIZERS}
    assert set(tf_optimizers.OPTIMIZERS) == names
    assert set(torch_optimizers.OPTIMIZERS) == names


@pytest.mark.parametrize("definition", OPTIMIZERS, ids=lambda definition: definition.name)
def test_both_backends_build_the_optimiser_with_the_tables_settings(definition):
    keras_config = tf_optimizers.make_optimizer(definition.name, 0.01, loss_scale=False).get_config()
    parameters = [torch.nn.Parameter(torch.zeros(1))]
    torch_defaults = torch_optimizers.make_optimizer(definition.name, 0.01, parameters).defaults
    assert keras_config["learning_rate"] == pytest.approx(torch_defaults["lr"])
    for setting, value in definition.settings.items():
        assert keras_config[setting] == pytest.approx(value), setting
        assert TORCH_SETTINGS[setting](torch_defaults) == pytest.approx(value), setting
