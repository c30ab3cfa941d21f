"""The `unmix` click group and its entry point.

Start-up stays cheap: commands import unmix.core's heavier modules (and any deep-learning
framework) inside their bodies, so `unmix --help` loads neither TensorFlow nor PyTorch.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from unmix.cli.config_commands import config
from unmix.cli.datasets_command import datasets
from unmix.cli.evaluate_command import evaluate
from unmix.cli.generate_command import generate
from unmix.cli.plugins_command import plugins
from unmix.cli.predict_command import predict
from unmix.cli.train_command import train
from unmix.core.errors import UnmixError
from unmix.core.plugins import plugin_manager

DISTRIBUTIONS = ("unmix-core", "unmix-cli", "unmix-sources", "unmix-tf", "unmix-torch")


class UserError(click.ClickException):
    """One line on stderr, exit code 2: how every user mistake ends."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"unmix: error: {self.format_message()}", err=True)


class UnmixGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UnmixError as error:
            raise UserError(str(error)) from None


def installed_versions() -> dict[str, str]:
    versions = {}
    for distribution in DISTRIBUTIONS:
        try:
            versions[distribution] = version(distribution)
        except PackageNotFoundError:
            continue
    return versions


def _print_version(ctx: click.Context, _parameter: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    versions = installed_versions()
    parts = ", ".join(f"{name} {number}" for name, number in versions.items())
    click.echo(f"unmix {versions.get('unmix-cli', '?')} ({parts})")
    ctx.exit()


@click.group(cls=UnmixGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the versions of the installed unmix packages and exit.")
def cli() -> None:
    """unmix: train networks that pull one instrument out of a mix, separate songs, measure the result."""


cli.add_command(plugins)
cli.add_command(config)
cli.add_command(generate)
cli.add_command(train)
cli.add_command(predict)
cli.add_command(datasets)
cli.add_command(evaluate)


def main(argv: list[str] | None = None) -> None:
    manager = plugin_manager()
    manager.add_commands(cli)
    for failure in manager.failures:
        click.echo(f"unmix: warning: {failure.describe()}", err=True)
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="unmix")
