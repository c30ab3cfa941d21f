"""The unmix-sources plugin: dataset layouts, mixers, song sources, stem writers and the
`unmix datasets` command, registered like any third-party plugin.

Imports of the implementations happen inside the hooks, so that loading this module (which every
`unmix` command does at start-up) stays cheap.
"""

from __future__ import annotations

from typing import Any

from unmix.core.hookspecs import Register, hookimpl


@hookimpl
def register_datasets(register: Register) -> None:
    from unmix.sources.datasets import DATASETS, LAYOUT_ALIASES

    by_name = {dataset.name: dataset for dataset in DATASETS}
    for dataset in DATASETS:
        register(dataset.name, dataset)
    for old_name, name in LAYOUT_ALIASES.items():
        register(old_name, by_name[name])


@hookimpl
def register_mixers(register: Register) -> None:
    from unmix.sources.mixers import RatioMixer

    register("ratio", RatioMixer())


@hookimpl
def register_sources(register: Register) -> None:
    from unmix.sources.sources import FileSource, FolderSource, YouTubeSource

    for source in (FileSource(), FolderSource(), YouTubeSource()):
        register(source.name, source)


@hookimpl
def register_exporters(register: Register) -> None:
    from unmix.sources.exporters import EXPORTERS

    for exporter in EXPORTERS:
        register(exporter.name, exporter)


@hookimpl
def register_commands(cli: Any) -> None:
    from unmix.sources.commands import datasets

    cli.add_command(datasets)
