"""`unmix config show` and `unmix config check`."""

from __future__ import annotations

import json

import attrs
import click

from unmix.core.errors import UnmixError


@click.group()
def config() -> None:
    """Inspect configuration files."""


@config.command()
@click.argument("configuration", type=click.Path(dir_okay=False))
def show(configuration: str) -> None:
    """Print CONFIGURATION merged with its bases and validated, as JSON.

    The model's options are shown in full, its declared defaults filled in, when the model is
    installed here (`unmix models` lists each option's help).
    """
    from unmix.core.config.loader import load_configuration, model_options_in_full
    from unmix.core.plugins import plugin_manager

    loaded = load_configuration(configuration)
    shown = attrs.asdict(loaded.settings)
    options = model_options_in_full(loaded, plugin_manager())
    if options is not None:
        shown["training"]["model"]["options"] = options
    click.echo(json.dumps(shown, indent=2))


@config.command()
@click.argument("configurations", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check(configurations: tuple[str, ...]) -> None:
    """Check that each CONFIGURATION loads, validates and names installed plugins.

    Also warns, one line per key, about the seed's keys that a file sets but unmix does not read,
    so that a setting copied from an unmix.io file is not mistaken for one that has an effect.
    """
    from unmix.core.config.loader import check_plugin_names, inert_keys_set, load_configuration
    from unmix.core.plugins import plugin_manager

    failed = 0
    for configuration in configurations:
        try:
            loaded = load_configuration(configuration)
            warnings = check_plugin_names(loaded, plugin_manager())
        except UnmixError as error:
            failed += 1
            click.echo(f"unmix: error: {error}", err=True)
            continue
        warnings += [f"{file}: {key} is accepted for compatibility with unmix.io files but unmix does not use it"
                     for file, key in inert_keys_set(loaded)]
        for warning in warnings:
            click.echo(f"unmix: warning: {warning}", err=True)
        chain = " -> ".join(file.name for file in loaded.chain)
        click.echo(f"ok {configuration} ({chain})")
    if failed:
        raise SystemExit(2)
