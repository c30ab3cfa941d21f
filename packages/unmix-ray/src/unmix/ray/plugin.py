"""The entry point: adds `unmix catalogue`. Loaded by every `unmix` command, so it imports no Ray."""

from __future__ import annotations

from typing import Any

from unmix.core.hookspecs import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from unmix.ray.catalogue_command import catalogue

    cli.add_command(catalogue)
