"""`unmix plugins`: what is installed and what each plugin registers."""

from __future__ import annotations

import json

import click

from unmix.core.plugins import plugin_manager


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List plugins, their versions and what each registers."""
    manager = plugin_manager()
    described = manager.describe()
    failures = [failure.describe() for failure in manager.failures]
    conflicts = manager.conflicts()
    if as_json:
        click.echo(json.dumps({"plugins": described, "failures": failures, "conflicts": conflicts}, indent=2))
        return
    if not described:
        click.echo("no unmix plugins installed")
    for plugin in described:
        origin = plugin["distribution"] or plugin["module"]
        number = f" {plugin['version']}" if plugin["version"] else ""
        click.echo(f"{plugin['name']} ({origin}{number})")
        if not plugin["registers"]:
            click.echo("  registers nothing")
        for kind, names in plugin["registers"].items():
            click.echo(f"  {kind}: {', '.join(names)}")
    for line in failures + conflicts:
        click.echo(f"problem: {line}")
