"""The entry point: the `unmix serve` command.

Loaded by every `unmix` command, so it imports neither starlette nor uvicorn.
"""

from __future__ import annotations

from typing import Any

from unmix.core.hookspecs import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from unmix.serve.command import serve_command

    cli.add_command(serve_command)
