"""The hooks a plugin can implement: one `register_*` hook per kind of thing.

Each hook receives a `register(name, thing)` callback. Names are what configurations and CLI
options use to pick a thing (`"name": "hourglass"`); they are matched case-insensitively.
See docs/plugins.md for a minimal example of each hook.
"""

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("unmix")
hookimpl = pluggy.HookimplMarker("unmix")

Register = Callable[[str, Any], None]


@hookspec
def register_models(register: Register) -> None:
    """Register model classes (build/fit/predict/save/load), e.g. `register("hourglass", Hourglass)`."""


@hookspec
def register_transforms(register: Register) -> None:
    """Register transforms that turn audio spectrograms into model inputs and targets and back."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset layouts: how a folder of song folders maps to tracks with stems."""


@hookspec
def register_mixers(register: Register) -> None:
    """Register mixers that combine one or more datasets into training examples."""


@hookspec
def register_sources(register: Register) -> None:
    """Register sources that turn a URI (file, folder, link) into audio to separate."""


@hookspec
def register_exporters(register: Register) -> None:
    """Register stem writers keyed by format name (wav, flac, mp3, ...)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the `unmix` click group: `@cli.command()` inside the hook."""
