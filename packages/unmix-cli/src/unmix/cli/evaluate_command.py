"""`unmix evaluate`: score a run on held-out songs against the mixture and oracle baselines."""

from __future__ import annotations

import click


@click.command()
@click.option("--run-folder", required=True, type=click.Path(), help="A run folder made by `unmix train`.")
@click.option("--collection", type=click.Path(), help="Songs to evaluate on [default: the run's collection].")
@click.option("--test-data-count", type=click.IntRange(min=0),
              help="Evaluate the last N songs in md5 order (the seed's test split) [default: the run's "
                   "collection.test_data_count; with --collection and 0: every song].")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes that score songs in parallel.")
def evaluate(run_folder: str, collection: str | None, test_data_count: int | None, jobs: int) -> None:
    """Separate the test songs and report SDR/SIR/SAR (museval v4, mir_eval), SI-SDR and SDR."""
    from unmix.core.evaluation.evaluate import evaluate_run

    evaluation = evaluate_run(run_folder, collection, test_data_count, jobs=jobs)
    click.echo(evaluation.table)
    click.echo(f"reports: {run_folder}/evaluation.txt, evaluation.json, accuracy.csv, plots/evaluation_sdr.png")
