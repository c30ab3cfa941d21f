"""`unmix generate`: decode and resample a collection once into the training-data cache.

Thin: parses the options, calls `unmix.core.data.cache.generate_cache` (imported inside the command so
that `unmix --help` stays fast), prints what was skipped and a summary. Exit code 0 when the cache
holds at least one song of RAW afterwards; 2 (one error line) when none could be cached, when
RAW holds no songs, or when DESTINATION cannot be used; 130 (one line) when interrupted by Ctrl-C.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("generate")
@click.option("--path", "raw", required=True, type=click.Path(path_type=Path),
              help="Folder of songs to read (searched recursively): seed, stem-folder or MUSDB18 .stem.mp4 layout.")
@click.option("--destination", required=True, type=click.Path(path_type=Path),
              help="Cache folder to write (one folder per sample rate / channels / target).")
@click.option("--sample-rate", type=click.IntRange(1000, 384000), default=22050, show_default=True,
              help="Sample rate of the cached audio, in Hz.")
@click.option("--channels", type=click.IntRange(1, 2), default=1, show_default=True,
              help="1 for mono, 2 for stereo.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Songs decoded in parallel.  [default: one per CPU]")
@click.option("--target", default=None,
              help="The instrument to extract.  [default: the one the file names designate (guitar_<song>.wav "
                   "beside rest_<song>.wav: guitar), else vocals]")
@click.option("--dataset", default="auto", show_default=True,
              help="Dataset layout plugin (see `unmix plugins`), or auto to try them all.")
def generate(raw: Path, destination: Path, sample_rate: int, channels: int, jobs: int | None, target: str | None,
             dataset: str) -> None:
    """Decode every song of a collection once into a memory-mappable training-data cache.

    Songs already cached (same settings, unchanged sources) are skipped, so an interrupted run
    continues where it stopped. Songs that cannot be used are listed and left out.
    """
    from unmix.core.data.cache import generate_cache
    from unmix.core.errors import UnmixError

    try:
        report = generate_cache(raw, destination, sample_rate=sample_rate, channels=channels, target=target,
                                dataset=dataset, jobs=jobs, progress=True)
    except KeyboardInterrupt:
        click.echo(f"unmix: generate interrupted: the songs finished so far stay cached in '{destination}'; "
                   "run the same command again to continue", err=True)
        raise SystemExit(130) from None
    for note in report.notes:
        click.echo(f"unmix: warning: {note}", err=True)
    for song in report.skipped:
        click.echo(f"unmix: skipped {song.describe()}", err=True)
    if not report.songs:
        raise UnmixError(f"no song from '{raw}' could be cached: {len(report.skipped)} skipped (listed above); "
                         "fix or remove those files and run again")
    parts = [f"{len(report.generated)} generated", f"{len(report.reused)} already done"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    click.echo(f"{len(report.songs)} songs cached in '{report.destination}' ({report.settings.describe()}): "
               + ", ".join(parts))
