"""The `unmix` click group and its entry point.

Start-up stays cheap: commands import unmix.core's heavier modules (and any deep-learning
framework) inside their bodies, so `unmix --help` loads neither TensorFlow nor PyTorch.

Every way a command can end is decided here, once for all commands:
- a user's mistake (`UnmixError`) is one line `unmix: error: ...` and exit code 2;
- Ctrl-C is one line `unmix: interrupted` and exit code 130 (128 + SIGINT, as shells expect);
- an exception raised in a third-party plugin's code is one line naming the plugin and its
  distribution, and exit code 1: the input may be fine, the installed plugin failed, and 2 stays
  reserved for what the user can fix in the command line or the configuration;
- any other exception is a bug in unmix and keeps its traceback, so it can be reported.
UNMIX_DEBUG=1 prints the traceback of every error as well.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from unmix.cli.config_commands import config
from unmix.cli.datasets_command import add_datasets_hint
from unmix.cli.evaluate_command import evaluate
from unmix.cli.framework_logs import quiet_framework_logs
from unmix.cli.generate_command import generate
from unmix.cli.models_command import models
from unmix.cli.plugin_command import plugin
from unmix.cli.plugins_command import plugins
from unmix.cli.predict_command import predict
from unmix.cli.train_command import train
from unmix.core.errors import PluginError, UnmixError
from unmix.core.plugins import DISABLE_VARIABLE, PluginManager, plugin_manager

DISTRIBUTIONS = ("unmix-core", "unmix-cli", "unmix-sources", "unmix-tf", "unmix-torch")
DEBUG_VARIABLE = "UNMIX_DEBUG"
INTERRUPTED_EXIT_CODE = 130
PLUGIN_FAILURE_EXIT_CODE = 1


class UserError(click.ClickException):
    """One line on stderr, exit code 2: how every user mistake ends."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"unmix: error: {self.format_message()}", err=True)


class PluginFailed(click.ClickException):
    """A third-party plugin raised while a command ran: one line naming it, exit code 1."""

    exit_code = PLUGIN_FAILURE_EXIT_CODE

    def show(self, file: Any = None) -> None:
        click.echo(f"unmix: error: {self.format_message()}", err=True)


class UnmixGroup(click.Group):
    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        disabled = plugin_manager().disabled_commands.get(args[0]) if args else None
        if disabled is not None:
            raise PluginError(disabled)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except UnmixError as error:
            show_traceback_when_debugging(error)
            raise UserError(str(error)) from None
        except KeyboardInterrupt as interruption:
            show_traceback_when_debugging(interruption)
            report_interruption()
        except Exception as error:
            raise plugin_failure(plugin_manager(), error) from None


def debugging() -> bool:
    """UNMIX_DEBUG set to anything but empty, 0, false or no."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def show_traceback_when_debugging(error: BaseException) -> None:
    if debugging():
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)


def report_interruption() -> None:
    """Ctrl-C ends every command alike; what a command was writing is already cleaned up by then."""
    click.echo("unmix: interrupted", err=True)
    raise SystemExit(INTERRUPTED_EXIT_CODE)


def plugin_failure(manager: PluginManager, error: Exception) -> PluginFailed:
    """The one line for an exception raised in a third-party plugin; unmix's own exceptions are re-raised."""
    blamed = manager.plugin_owning(error.__traceback__)
    if blamed is None:
        raise error
    plugin, function = blamed
    show_traceback_when_debugging(error)
    return PluginFailed(
        f"{plugin.describe()} failed in {function}: {type(error).__name__}: {error} "
        f"({DEBUG_VARIABLE}=1 shows the traceback; {DISABLE_VARIABLE}={plugin.name} leaves the plugin out)"
    )


def report_plugin_problems(manager: PluginManager) -> None:
    """Warn once, before the command runs, about every plugin that was skipped and every disabled name."""
    for failure in manager.failures:
        click.echo(f"unmix: warning: {failure.describe()}", err=True)
    for conflict in manager.conflicts():
        click.echo(f"unmix: warning: {conflict}", err=True)
    for name in manager.unknown_disabled:
        installed = ", ".join(sorted([*manager.infos, *manager.disabled])) or "none"
        click.echo(f"unmix: warning: {DISABLE_VARIABLE} names '{name}', which is not an installed plugin "
                   f"(installed: {installed}); check the name with `unmix plugins`", err=True)


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
@click.option("--verbose", is_flag=True,
              help="Also show the deep-learning frameworks' start-up logs (as UNMIX_DEBUG=1 does).")
def cli(verbose: bool) -> None:
    """unmix: train networks that pull one instrument out of a mix, separate songs, measure the result."""
    if not verbose and not debugging():
        quiet_framework_logs()


cli.add_command(plugins)
cli.add_command(plugin)
cli.add_command(models)
cli.add_command(config)
cli.add_command(generate)
cli.add_command(train)
cli.add_command(predict)
cli.add_command(evaluate)


def main(argv: list[str] | None = None) -> None:
    try:
        manager = plugin_manager()
        manager.settle()
        manager.add_commands(cli)
        add_datasets_hint(cli)
    except KeyboardInterrupt:
        report_interruption()
    report_plugin_problems(manager)
    show_warnings_on_stderr()
    try:
        ended = cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="unmix", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:
        error.show()
        raise SystemExit(error.exit_code) from None
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "unmix"
        click.echo(f"unmix: error: {error.format_message()} (see `{command} --help`)", err=True)
        raise SystemExit(error.exit_code) from None
    except click.ClickException as error:
        error.show()
        raise SystemExit(error.exit_code) from None
    except click.Abort:
        report_interruption()
    raise SystemExit(ended if isinstance(ended, int) else 0)


def show_warnings_on_stderr() -> None:
    """What unmix logs as a warning (a skipped song, a repeated configuration key) reaches the terminal
    in the same `unmix: warning:` form as the command's own warnings; the run's logs.txt keeps all of it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("unmix: warning: %(message)s"))
    logging.getLogger("unmix").addHandler(handler)
