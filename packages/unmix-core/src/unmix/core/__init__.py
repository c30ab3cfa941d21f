"""unmix core: everything that does not need a deep-learning framework.

The folders are the stages a song goes through: `config` (files -> validated settings), `data`
(audio, collections, the cache, windows and batches, transforms), `models` (one way to build a
model from a configuration), `training` (the driver and its callbacks), `separation` (the
prediction engine), `evaluation` (metrics and reports). `plugins`, `hookspecs` and `interfaces`
are the contract with plugins; `runs`, `files` and `errors` are shared by every stage.

Plugins and applications import what they need from here: `from unmix.core import hookimpl,
Register, SeparationModel, UnmixError`. The names are loaded on first use, so importing
`unmix.core` stays cheap (the `unmix` command imports it before every command, `--help` included).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("unmix-core")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# The public surface: name -> the module that defines it. What is not listed here may change.
_PUBLIC = {
    "hookimpl": "unmix.core.hookspecs",
    "hookspec": "unmix.core.hookspecs",
    "Register": "unmix.core.hookspecs",
    "HOOKS_VERSION": "unmix.core.hookspecs",
    "plugin_manager": "unmix.core.plugins",
    "Batch": "unmix.core.interfaces",
    "Metrics": "unmix.core.interfaces",
    "SeparationModel": "unmix.core.interfaces",
    "ModelBuilder": "unmix.core.interfaces",
    "SongInput": "unmix.core.interfaces",
    "Source": "unmix.core.interfaces",
    "ExportOptions": "unmix.core.interfaces",
    "StemWriter": "unmix.core.interfaces",
    "SongWriter": "unmix.core.interfaces",
    "Exporter": "unmix.core.interfaces",
    "ExportableModel": "unmix.core.interfaces",
    "Runtime": "unmix.core.interfaces",
    "Option": "unmix.core.models.options",
    "Transform": "unmix.core.data.transforms",
    "Dataset": "unmix.core.data.collection",
    "DatasetScan": "unmix.core.data.collection",
    "DatasetShare": "unmix.core.data.collection",
    "Split": "unmix.core.data.collection",
    "split_songs": "unmix.core.data.collection",
    "StemFile": "unmix.core.data.tracks",
    "Track": "unmix.core.data.tracks",
    "Mixer": "unmix.core.data.collection",
    "UnmixError": "unmix.core.errors",
    "ConfigurationError": "unmix.core.errors",
    "PluginError": "unmix.core.errors",
    "AudioError": "unmix.core.errors",
    "ModelError": "unmix.core.errors",
    "Configuration": "unmix.core.config.schema",
    "load_configuration": "unmix.core.config.loader",
    "create_engine": "unmix.core.api",
    "create_engine_from_weights": "unmix.core.api",
    "run_prediction": "unmix.core.api",
    "separate": "unmix.core.api",
    "atomic_path": "unmix.core.files",
    "AtomicFile": "unmix.core.files",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'unmix.core' has no attribute '{name}'")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
