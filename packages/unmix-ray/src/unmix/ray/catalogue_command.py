"""`unmix catalogue`: separate a folder, a glob or a manifest of songs on Ray, resumable."""

from __future__ import annotations

import click


@click.command()
@click.argument("songs")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output folder for the stems, the records that make a second run resume, and catalogue-summary.csv.")
@click.option("--run-folder", type=click.Path(), help="A run folder made by `unmix train` (its export when current, "
              "as `unmix predict` chooses).")
@click.option("--model", "model_file", type=click.Path(), help="A model file made by `unmix export` (workers then "
              "need unmix-onnx, not the training framework).")
@click.option("--engine", type=click.Choice(["auto", "framework", "exported"]), default="auto", show_default=True,
              help="With --run-folder: as `unmix predict --engine`.")
@click.option("--ray", "ray_address", default="local", show_default=True,
              help="'local' starts Ray on this machine for this run; an address (HOST:PORT of a head node started "
                   "with `ray start --head`) joins that cluster.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Workers to start, each loading the model once [default: the cluster's CPUs / --threads].")
@click.option("--threads", "threads_per_worker", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPUs each worker takes.")
@click.option("--tries", type=click.IntRange(min=1), default=3, show_default=True,
              help="Attempts per song (a dead worker counts as one) before it is recorded as failed.")
@click.option("--retry-failed", is_flag=True, help="Try again the songs an earlier run recorded as failed.")
@click.option("--format", "format_name", help="Stem writer, as `unmix predict --format` [default: prediction.format].")
@click.option("--filename", help='File name template, as `unmix predict --filename` [default: prediction.filename].')
@click.option("--bit-depth", type=click.Choice(["16", "24", "float"]), help="wav/flac sample format.")
@click.option("--peak", type=click.Choice(["clip", "normalize"]), help="As `unmix predict --peak`.")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Windows per network call [default: prediction.batch_size].")
@click.option("--overwrite", is_flag=True,
              help="Separate every song again and replace existing files (also files this catalogue did not write).")
def catalogue(songs: str, output: str, run_folder: str | None, model_file: str | None, engine: str,
              ray_address: str, workers: int | None, threads_per_worker: int, tries: int, retry_failed: bool,
              format_name: str | None, filename: str | None, bit_depth: str | None, peak: str | None,
              batch_size: int | None, overwrite: bool) -> None:
    """Separate every song of SONGS (a folder, a quoted glob, or a manifest: .txt/.lst/.m3u with one path or link
    per line, or .csv with a 'uri' column) on a Ray cluster.

    A second run over the same songs and output skips every song whose stems are complete, and a worker that dies
    mid-song has its song retried by another. Songs, model and output must lie at the same path on every node.
    """
    from unmix.ray.catalogue import separate_catalogue
    from unmix.ray.workers import ModelChoice, OutputChoice

    if (run_folder is None) == (model_file is None):
        raise click.UsageError("give one of --run-folder RUN or --model FILE")
    if engine != "auto" and run_folder is None:
        raise click.UsageError("--engine chooses how a --run-folder separates; leave it out with --model")
    report = separate_catalogue(
        songs, output, ModelChoice(run_folder=run_folder, model_file=model_file, engine=engine, batch_size=batch_size),
        OutputChoice(format_name=format_name, template=filename, bit_depth=bit_depth, peak=peak),
        ray_address=ray_address, workers=workers, threads_per_worker=threads_per_worker, tries=tries,
        retry_failed=retry_failed, overwrite=overwrite)
    hours = report.audio_seconds / 3600
    speed = report.audio_seconds / max(report.wall_seconds, 1e-9)
    click.echo(f"separated {report.separated} songs ({hours:.2f} h of audio in {report.wall_seconds:.1f} s, "
               f"{speed:.1f} audio-hours per hour, {report.workers} workers); {report.already_done} were already "
               f"done; {report.failed} failed; summary: {report.summary}")
    if report.failed:
        raise SystemExit(2)
