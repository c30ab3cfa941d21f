"""One way to turn a configuration into a model, shared by training, prediction and evaluation.

Models come from `register_models` plugins, registered per backend as "<backend>:<name>"; this
module finds the builder, says which package to install when a backend is missing, and describes
a built model in the run folder's model.json so prediction can rebuild it.
"""

from __future__ import annotations

from collections.abc import Sequence

from unmix.core.config.loader import LoadedConfiguration, check_backend_installed
from unmix.core.config.schema import Configuration
from unmix.core.errors import UnmixError
from unmix.core.interfaces import SeparationModel
from unmix.core.plugins import Registry, plugin_manager


def model_key(settings: Configuration) -> str:
    """Models are registered per backend, as "<backend>:<name>" ("tensorflow:hourglass")."""
    return f"{settings.training.backend}:{settings.training.model.name}"


def installed_models(loaded: LoadedConfiguration) -> Registry:
    """The model registry; without any model plugin nothing can train or separate, so say what to install."""
    registry = plugin_manager().registry("models")
    if len(registry) == 0:
        raise UnmixError(f"{loaded.path}: no model plugin is installed; install 'unmix-tf[cpu]' or unmix-torch")
    return registry


def build_model(loaded: LoadedConfiguration, input_shape: tuple[int, int, int]) -> SeparationModel:
    registry = installed_models(loaded)
    check_backend_installed(loaded, registry)
    builder = registry.get(model_key(loaded.settings))
    return builder(loaded.settings, tuple(input_shape))


def describe_model(model: SeparationModel, loaded: LoadedConfiguration, input_shape: Sequence[int]) -> dict:
    return {
        "backend": model.backend,
        "model": loaded.settings.training.model.name,
        "input_shape": list(input_shape),
        "checkpoint_suffix": model.checkpoint_suffix,
        "trainable_parameters": model.trainable_parameters(),
        "transformation": loaded.settings.transformation.name,
    }
