"""One way to turn a configuration into a model, shared by training, prediction and evaluation.

Models come from `register_models` plugins, registered per backend as "<backend>:<name>"; this
module finds the builder, says which package to install when a backend is missing, and describes
a built model in the run folder's model.json so prediction can rebuild it, and warns when the
plugin that built it has changed since.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from unmix.core.config.loader import LoadedConfiguration, check_backend_installed
from unmix.core.config.schema import Configuration
from unmix.core.errors import PluginError, UnmixError
from unmix.core.interfaces import SeparationModel
from unmix.core.models.networks import input_kind
from unmix.core.plugins import Registry, plugin_manager

log = logging.getLogger("unmix")


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
    """What model.json records: what rebuilding the model needs, and which plugin's code built it."""
    plugin = plugin_manager().provider("models", model_key(loaded.settings))
    return {
        "backend": model.backend,
        "model": loaded.settings.training.model.name,
        "kind": input_kind(input_shape),
        "input_shape": list(input_shape),
        "checkpoint_suffix": model.checkpoint_suffix,
        "trainable_parameters": model.trainable_parameters(),
        "transformation": loaded.settings.transformation.name,
        "plugin": {"name": plugin.name, "distribution": plugin.distribution, "version": plugin.version},
    }


def warn_if_plugin_changed(run_name: str, loaded: LoadedConfiguration, description: Mapping[str, Any]) -> None:
    """Warn when the code that builds a run's model is no longer the code that trained it.

    Weights are only as good as the network they are loaded into: another version of the plugin may
    build a different network or preprocess differently, so the results may differ without any error.
    Nothing is said when there is nothing to compare (a run folder from before the record, a model
    registered by code outside any distribution) or when the model is not available at all, which
    building it reports.
    """
    recorded = description.get("plugin")
    if not isinstance(recorded, Mapping) or not recorded.get("distribution"):
        return
    distribution, trained_with = recorded["distribution"], recorded.get("version")
    key = model_key(loaded.settings)
    try:
        current = plugin_manager().provider("models", key)
    except PluginError:
        return
    if current.distribution == distribution:
        if current.version != trained_with:
            log.warning("run '%s' was trained with %s %s, %s is installed; results may differ",
                        run_name, distribution, trained_with, current.version)
        return
    gone = "" if _installed(distribution) else ", which is no longer installed"
    source = f"{current.distribution} {current.version}" if current.distribution else f"plugin '{current.name}'"
    log.warning("run '%s' was trained with %s %s%s; model '%s' now comes from %s; results may differ",
                run_name, distribution, trained_with, gone, key, source)


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True
