"""`unmix plugins`: what is installed, what each plugin registers and the commands it adds."""

from __future__ import annotations

import json

import click

from unmix.core.hookspecs import HOOKS_VERSION
from unmix.core.plugins import plugin_manager


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List plugins, their versions, what each registers and the commands each adds."""
    manager = plugin_manager()
    described = manager.describe()
    failures = [failure.describe() for failure in manager.failures]
    conflicts = manager.conflicts()
    if as_json:
        click.echo(json.dumps({"hooks_version": ".".join(map(str, HOOKS_VERSION)), "plugins": described,
                               "failures": failures, "conflicts": conflicts, "disabled": manager.disabled}, indent=2))
        return
    if not described:
        click.echo("no unmix plugins installed")
    for plugin in described:
        origin = plugin["distribution"] or plugin["module"]
        number = f" {plugin['version']}" if plugin["version"] else ""
        click.echo(f"{plugin['name']} ({origin}{number})")
        if not plugin["registers"] and not plugin["commands"]:
            click.echo("  registers nothing")
        for kind, names in plugin["registers"].items():
            click.echo(f"  {kind}: {', '.join(names)}")
        if plugin["commands"]:
            click.echo(f"  commands: {', '.join(plugin['commands'])}")
    for name in manager.disabled:
        click.echo(f"{name}: disabled by UNMIX_DISABLE_PLUGINS")
    for line in failures + conflicts:
        click.echo(f"problem: {line}")
