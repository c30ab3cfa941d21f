"""The entry point (`[project.entry-points.unmix]` in pyproject.toml): registers the model by name.

Every `unmix` command imports this module, so it imports nothing heavy: the model module is
imported only when a configuration asks for the model.
"""

from __future__ import annotations

from typing import Any

from unmix.core.hookspecs import Register, hookimpl


def build_gain_model(settings: Any, input_shape: tuple[int, int, int]) -> Any:
    """The `ModelBuilder`: (validated configuration, (bins, frames, channels)) -> SeparationModel."""
    from unmix_example_model.model import GainModel

    return GainModel(settings, input_shape)


@hookimpl
def register_models(register: Register) -> None:
    # "<backend>:<name>": a configuration selects it with training.backend "numpy" and training.model.name
    # "example-gain".
    register("numpy:example-gain", build_gain_model)
