"""`unmix predict`: separate songs, folders or YouTube links with a trained model."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from unmix.core.errors import UnmixError

if TYPE_CHECKING:
    from unmix.core.interfaces import Exporter, ExportOptions, SongInput
    from unmix.core.runs import RunFolder
    from unmix.core.separation.prediction import Engine, ModelFiles


@click.command()
@click.option("--run-folder", type=click.Path(), help="A run folder made by `unmix train` (uses its best checkpoint).")
@click.option("--weights", type=click.Path(), help="A checkpoint file; needs --configuration.")
@click.option("--configuration", type=click.Path(), help="The configuration the --weights were trained with.")
@click.option("--model", "model_file", type=click.Path(),
              help="A model file made by `unmix export` (.onnx: needs unmix-onnx, not the training framework).")
@click.option("--engine", type=click.Choice(["auto", "framework", "exported"]), default="auto", show_default=True,
              help="With --run-folder: 'exported' separates with the run's `unmix export` file (RUN/export/, on "
                   "onnxruntime: faster on a CPU), 'framework' with TensorFlow or PyTorch, 'auto' with the export when "
                   "an installed runtime reads it and it is newer than the best checkpoint, else the framework.")
@click.option("--song", help="One audio file, or any URI a source plugin understands (see `unmix plugins`).")
@click.option("--songs", type=click.Path(), help="A folder of audio files (searched recursively).")
@click.option("--youtube", help="A YouTube link; the audio is downloaded to a temporary folder first.")
@click.option("--output", type=click.Path(),
              help="Output folder, created if needed [default: the run's predictions/]. When it lies inside "
                   "--songs, nothing in it is taken as a song.")
@click.option("--format", "format_name",
              help="Stem writer: wav, flac, ogg, mp3, or npz (one NumPy archive per song with every stem) "
                   "[default: prediction.format].")
@click.option("--filename",
              help='File name template inside --output, with {song}, {stem} (required) and {ext}; subfolders are '
                   'allowed, ".." and absolute paths are not [default: prediction.filename, "{song}_{stem}.{ext}"]. '
                   'A format with one file per song (npz) leaves {stem} out: "{song}_{stem}.{ext}" gives <song>.npz.')
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Windows per network call [default: prediction.batch_size].")
@click.option("--bit-depth", type=click.Choice(["16", "24", "float"]), help="wav/flac sample format.")
@click.option("--peak", type=click.Choice(["clip", "normalize"]),
              help="Stem samples above full scale: 'clip' them (with a warning naming the song; 32-bit float wav "
                   "keeps them instead), or 'normalize' both stems of a song by one gain, so that target + rest is "
                   "the input times that gain [default: prediction.peak].")
@click.option("--overwrite", is_flag=True,
              help="Replace output files that already exist (they are refused otherwise). Input songs are never "
                   "overwritten, even with --overwrite; files inside an --output folder that lies within --songs "
                   "are never taken as songs.")
def predict(run_folder: str | None, weights: str | None, configuration: str | None, model_file: str | None,
            engine: str, song: str | None,
            songs: str | None, youtube: str | None, output: str | None, format_name: str | None,
            filename: str | None, batch_size: int | None, bit_depth: str | None, peak: str | None,
            overwrite: bool) -> None:
    """Split songs into the trained target and the rest; one file per stem (npz: one per song).

    Every input is checked (songs readable, output folder, file names, existing outputs) before
    the model is loaded.
    """
    from unmix.core.interfaces import ExportOptions
    from unmix.core.runs import open_run_folder
    from unmix.core.separation.prediction import (
        check_template,
        exporter_for,
        load_engine,
        model_file_model_files,
        plan_outputs,
        prediction_output_folder,
        weights_model_files,
        writes_per_song,
    )

    if sum(value is not None for value in (run_folder, weights, model_file)) != 1:
        raise click.UsageError("give one of --run-folder RUN, --weights W --configuration C or --model FILE")
    if weights is not None and configuration is None:
        raise click.UsageError("--weights needs --configuration (the configuration it was trained with)")
    inputs = [(name, value) for name, value in (("song", song), ("folder", songs), ("youtube", youtube)) if value]
    if len(inputs) != 1:
        raise click.UsageError("give exactly one of --song FILE, --songs DIR or --youtube URL")
    source_name, uri = inputs[0]

    run = open_run_folder(run_folder) if run_folder is not None else None
    if engine != "auto" and run is None:
        raise click.UsageError("--engine chooses how a --run-folder separates; leave it out with --weights or --model")
    if run is not None:
        model_files = _run_engine_files(run, engine)
    elif model_file is not None:
        model_files = model_file_model_files(model_file)
    else:
        model_files = weights_model_files(weights, configuration)
    settings = model_files.settings.prediction
    exporter = exporter_for(format_name or settings.format)
    options = ExportOptions(bit_depth=bit_depth or settings.bit_depth, bitrate_kbps=settings.bitrate_kbps,
                            peak=peak or settings.peak)
    folder = prediction_output_folder(run, output)
    template = filename or settings.filename
    per_song = writes_per_song(exporter)
    check_template(template, per_song)
    with tempfile.TemporaryDirectory(prefix="unmix-") as temporary:
        song_inputs = _readable_songs(source_name, uri, Path(temporary), folder)
        plans = plan_outputs(model_files.settings.collection.target, song_inputs, folder, template,
                             exporter.extension, overwrite, per_song)
        engine = load_engine(model_files, batch_size)
        _separate_songs(engine, song_inputs, plans, exporter, options, folder)


def _run_engine_files(run: RunFolder, engine: str) -> ModelFiles:
    """The run's checkpoint, or its current export (`--engine`); an export's use is said on stderr."""
    from unmix.core.separation.prediction import run_engine_model_files

    files = run_engine_model_files(run, engine)
    if files.runtime is not None:
        click.echo(f"separating with the run's export {files.checkpoint} (--engine framework uses "
                   f"{files.settings.training.backend})", err=True)
    return files


def _readable_songs(source_name: str, uri: str, temporary: Path, output: Path) -> list[SongInput]:
    """The songs to separate, each opened once so that an unreadable one stops the command before
    the model is loaded. Files inside an output folder within the songs folder are left out."""
    from unmix.core.data.streaming import check_readable
    from unmix.core.plugins import plugin_manager
    from unmix.core.separation.prediction import find_source, songs_outside_output

    source = find_source(uri) if source_name == "song" else plugin_manager().get("sources", source_name)
    local = Path(uri).expanduser()
    songs_folder = local if source_name != "youtube" and local.is_dir() else None
    songs = songs_outside_output(source.songs(uri, temporary), songs_folder, output)
    for song in songs:
        check_readable(song.path)
    return songs


def _separate_songs(engine: Engine, songs: list[SongInput], plans: list[dict[str, Path]], exporter: Exporter,
                    options: ExportOptions, folder: Path) -> None:
    """Separate every song into its planned files; with several songs, one that fails is reported
    and skipped, and the command ends with exit code 2."""
    from unmix.core.separation.prediction import separate_into

    results, failures = [], []
    started = time.monotonic()
    for song, files in zip(songs, plans, strict=True):
        song_started = time.monotonic()
        try:
            result = separate_into(engine, song.path, files, exporter, options, song.name)
        except UnmixError as error:
            if len(songs) == 1:
                raise
            failures.append(str(error))
            click.echo(f"unmix: error: {error}", err=True)
            continue
        elapsed = time.monotonic() - song_started
        results.append(result)
        written = ", ".join(str(path) for path in dict.fromkeys(result.files.values()))
        click.echo(f"{result.song}: {result.seconds:.1f} s of audio in {elapsed:.1f} s "
                   f"({result.seconds / max(elapsed, 1e-9):.1f}x real time) -> {written}")
    total_audio = sum(result.seconds for result in results)
    click.echo(f"separated {len(results)} of {len(songs)} songs ({total_audio:.1f} s of audio in "
               f"{time.monotonic() - started:.1f} s) into {folder}")
    if failures:
        raise SystemExit(2)
