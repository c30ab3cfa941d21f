"""`unmix models`: every model a configuration can pick, its declared options and who registered it."""

from __future__ import annotations

import json
from typing import Any

import attrs
import click

from unmix.core.models.options import Option
from unmix.core.plugins import plugin_manager


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def models(as_json: bool) -> None:
    """List the models by backend, with each option's default and help, and the distribution that registered it.

    A configuration picks one with `training.backend` and `training.model.name`, and sets its
    options in `training.model.options`.
    """
    listed = list_models()
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        click.echo("no models installed; install 'unmix-tf[cpu]' or unmix-torch")
    for model in listed:
        click.echo(f"{model['backend']}:{model['name']} ({model['distribution'] or model['plugin']}"
                   f"{' ' + model['version'] if model['version'] else ''})")
        if model["kind"] is not None:
            click.echo(f"  kind: {model['kind']}")
        if model["options"] is None:
            click.echo("  options: not declared (the model reads training.model.options itself)")
        for option in model["options"] or []:
            click.echo(f"  {Option(**option).describe()}")


def list_models() -> list[dict[str, Any]]:
    """One entry per registered model; `options` and `kind` ("spectrogram" or "waveform") are None for a
    model registered without a kit, which declares neither."""
    manager = plugin_manager()
    listed = []
    for registration in manager.registry("models"):
        backend, _, name = registration.name.partition(":")
        provider = manager.infos[registration.plugin]
        declared = getattr(registration.thing, "declared_options", None)
        listed.append({
            "backend": backend,
            "name": name,
            "plugin": provider.name,
            "distribution": provider.distribution,
            "version": provider.version,
            "kind": getattr(registration.thing, "kind", None),
            "options": None if declared is None else [attrs.asdict(option) for option in declared],
        })
    return listed
