"""`unmix datasets` while unmix-sources is not installed: one line that says what to install.

The real command group (`unmix datasets demo`) belongs to unmix-sources, whose plugin adds it, so
the command line depends on core alone. Without that package a user would read click's "No such
command" and a usage block; this stand-in, added only where no plugin added `datasets`, names the
package instead.
"""

from __future__ import annotations

from typing import Any

import click

from unmix.core.errors import UnmixError

INSTALL_SOURCES = "pip install 'unmix-sources[demo]'"


@click.command("datasets", add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def datasets_hint(arguments: tuple[str, ...]) -> None:
    """Make song collections to train and evaluate on (needs unmix-sources, not installed)."""
    command = " ".join(["unmix datasets", *arguments[:1]])
    raise UnmixError(f"'{command}' comes with unmix-sources, which is not installed; {INSTALL_SOURCES}")


def add_datasets_hint(cli: Any) -> None:
    """Called after the plugins added their commands, so it never stands in for the real one."""
    if "datasets" not in cli.commands:
        cli.add_command(datasets_hint)
