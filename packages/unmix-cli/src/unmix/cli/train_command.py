"""`unmix train`: train configurations one after another, or resume a run."""

from __future__ import annotations

import click

from unmix.core.errors import UnmixError


@click.command()
@click.argument("configurations", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--workingdir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder under which runs/ (environment.output_path) is created.")
@click.option("--resume", "resume", type=click.Path(), default=None,
              help="Continue this run folder at its next epoch, with its optimiser state.")
def train(configurations: tuple[str, ...], workingdir: str, resume: str | None) -> None:
    """Train each CONFIGURATION in turn; each run gets its own folder under runs/.

    A configuration that fails is reported and the next one still trains; the exit code is 2 if
    any failed. Ctrl-C stops at the next batch, writes a checkpoint and prints how to resume.
    """
    from unmix.core.training.driver import TrainingInterrupted
    from unmix.core.training.driver import train as train_configuration

    if resume is None and not configurations:
        raise click.UsageError("give at least one CONFIGURATION, or --resume RUN")
    if resume is not None and configurations:
        raise click.UsageError("--resume continues an existing run; give no CONFIGURATION with it")
    jobs = [(None, resume)] if resume is not None else [(configuration, None) for configuration in configurations]
    failures = []
    for configuration, resume_folder in jobs:
        label = configuration or resume_folder
        try:
            run = train_configuration(configuration or "", working_directory=workingdir, resume=resume_folder)
        except TrainingInterrupted as interruption:
            click.echo(f"unmix: {interruption}", err=True)
            raise SystemExit(130) from None
        except UnmixError as error:
            if len(jobs) == 1:
                raise
            failures.append(f"{label}: {error}")
            click.echo(f"unmix: error: {error}", err=True)
            continue
        click.echo(f"trained {label}: {run.path}")
    if failures:
        click.echo(f"unmix: {len(failures)} of {len(jobs)} configurations failed", err=True)
        raise SystemExit(2)
