"""`unmix predict`: separate songs, folders or YouTube links with a trained model."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

from unmix.core.errors import UnmixError


@click.command()
@click.option("--run-folder", type=click.Path(), help="A run folder made by `unmix train` (uses its best checkpoint).")
@click.option("--weights", type=click.Path(), help="A checkpoint file; needs --configuration.")
@click.option("--configuration", type=click.Path(), help="The configuration the --weights were trained with.")
@click.option("--song", help="One audio file, or any URI a source plugin understands (see `unmix plugins`).")
@click.option("--songs", type=click.Path(), help="A folder of audio files (searched recursively).")
@click.option("--youtube", help="A YouTube link; the audio is downloaded to a temporary folder first.")
@click.option("--output", type=click.Path(file_okay=False), help="Output folder [default: the run's predictions/].")
@click.option("--format", "format_name", help="Stem writer: wav, flac, ogg, mp3 [default: prediction.format].")
@click.option("--filename", help='File name template [default: prediction.filename, "{song}_{stem}.{ext}"].')
@click.option("--batch-size", type=click.IntRange(min=1), help="Windows per model call.")
@click.option("--bit-depth", type=click.Choice(["16", "24", "float"]), help="wav/flac sample format.")
@click.option("--peak", type=click.Choice(["clip", "normalize"]), help="What to do with peaks above full scale.")
def predict(run_folder: str | None, weights: str | None, configuration: str | None, song: str | None,
            songs: str | None, youtube: str | None, output: str | None, format_name: str | None,
            filename: str | None, batch_size: int | None, bit_depth: str | None, peak: str | None) -> None:
    """Split songs into the trained target and the rest; one file per stem."""
    from unmix.core.interfaces import ExportOptions
    from unmix.core.plugins import plugin_manager
    from unmix.core.prediction import (
        engine_from_run,
        engine_from_weights,
        exporter_for,
        find_source,
        prediction_output_folder,
        separate_file,
    )
    from unmix.core.runs import open_run_folder

    if (run_folder is None) == (weights is None):
        raise click.UsageError("give either --run-folder RUN or --weights W --configuration C")
    if weights is not None and configuration is None:
        raise click.UsageError("--weights needs --configuration (the configuration it was trained with)")
    inputs = [(name, value) for name, value in (("song", song), ("folder", songs), ("youtube", youtube)) if value]
    if len(inputs) != 1:
        raise click.UsageError("give exactly one of --song FILE, --songs DIR or --youtube URL")
    source_name, uri = inputs[0]

    run = open_run_folder(run_folder) if run_folder is not None else None
    engine = engine_from_run(run_folder, batch_size) if run_folder else engine_from_weights(weights, configuration,
                                                                                           batch_size)
    settings = engine.settings.prediction
    exporter = exporter_for(format_name or settings.format)
    options = ExportOptions(bit_depth=bit_depth or settings.bit_depth, bitrate_kbps=settings.bitrate_kbps,
                            peak=peak or settings.peak)
    folder = prediction_output_folder(run, output)
    source = find_source(uri) if source_name == "song" else plugin_manager().get("sources", source_name)
    with tempfile.TemporaryDirectory(prefix="unmix-") as temporary:
        song_inputs = source.songs(uri, Path(temporary))
        results, failures = [], []
        started = time.monotonic()
        for song_input in song_inputs:
            song_started = time.monotonic()
            try:
                result = separate_file(engine, song_input.path, folder, exporter, options,
                                       filename or settings.filename, song=song_input.name)
            except UnmixError as error:
                if len(song_inputs) == 1:
                    raise
                failures.append(str(error))
                click.echo(f"unmix: error: {error}", err=True)
                continue
            elapsed = time.monotonic() - song_started
            results.append(result)
            files = ", ".join(str(path) for path in result.files.values())
            click.echo(f"{result.song}: {result.seconds:.1f} s of audio in {elapsed:.1f} s "
                       f"({result.seconds / max(elapsed, 1e-9):.1f}x real time) -> {files}")
    total_audio = sum(result.seconds for result in results)
    click.echo(f"separated {len(results)} of {len(song_inputs)} songs ({total_audio:.1f} s of audio in "
               f"{time.monotonic() - started:.1f} s) into {folder}")
    if failures:
        raise SystemExit(2)
