"""`unmix datasets`: ready-made collections; `unmix datasets demo` renders the demo collection.

Added to the `unmix` command by this package's plugin (`register_commands`), so the command line
itself depends on core alone. Thin: parses the options and calls `unmix.sources.demo.make_demo`
(imported inside the command, because every `unmix` command, `unmix --help` included, loads this
module and must not pay for numpy or music21). Every bad input (unknown target, non-empty
DEST without --force, FluidSynth, a SoundFont or music21 missing) is an UnmixError from there:
one line and exit code 2. The options are plain ints and strings rather than click ranges and
choices for that reason: click's own errors print a usage block, not one line.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group("datasets")
def datasets() -> None:
    """Make song collections to train and evaluate on."""


@datasets.command("demo")
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--songs", type=int, default=24, show_default=True, help="Number of songs.")
@click.option("--seconds", type=float, default=None,
              help="Length of every song in seconds (1-120).  [default: 20-30, drawn per song]")
@click.option("--target", default="guitar", show_default=True,
              help="The instrument the target stem plays: guitar, piano or vocals.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed, same files (byte for byte); another seed, other pieces and instruments.")
@click.option("--sample-rate", type=int, default=22050, show_default=True, help="Sample rate in Hz (8000-96000).")
@click.option("--exclude-pieces-of", "excluded_collections", type=click.Path(path_type=Path), multiple=True,
              help="Another demo collection whose pieces no song here may play, so that this one tests on music "
                   "the other never had (may be given more than once).")
@click.option("--force", is_flag=True,
              help="Write into a non-empty DESTINATION, replacing the song folders this run writes and demo.json.")
@click.option("--soundfont", type=click.Path(path_type=Path), default=None,
              help="General MIDI SoundFont (.sf2).  [default: FluidR3_GM.sf2 from fluid-soundfont-gm]")
@click.option("--jobs", type=int, default=None, help="Songs rendered in parallel.  [default: one per CPU]")
def demo(destination: Path, songs: int, seconds: float | None, target: str, seed: int, sample_rate: int,
         excluded_collections: tuple[Path, ...], force: bool, soundfont: Path | None, jobs: int | None) -> None:
    """Render a small collection of real music into DESTINATION in the unmixio layout.

    Each song is an excerpt of a multi-part piece from music21's corpus (string quartets,
    madrigals, masses, songs): one part played as the target instrument (<target>_<song>.wav),
    the other parts by other General MIDI instruments (rest_<song>.wav), with its own tempo,
    transposition and levels. DESTINATION/demo.json describes every song and the songs unmix
    tests on with the collection.test_data_count it names. Needs FluidSynth, a General MIDI
    SoundFont and music21: apt-get install fluidsynth fluid-soundfont-gm; pip install 'unmix-sources[demo]'.
    """
    from unmix.sources.demo import make_demo, pieces_of

    excluded = [piece for collection in excluded_collections for piece in pieces_of(collection)]
    report = make_demo(destination, songs=songs, seconds=seconds, target=target, seed=seed,
                       sample_rate=sample_rate, excluded_pieces=excluded, force=force, soundfont=soundfont, jobs=jobs,
                       progress=True)
    lengths = f"{seconds:g} s" if seconds is not None else "20-30 s"
    click.echo(f"{len(report.songs)} demo songs ({target}, {lengths}, {sample_rate} Hz, seed {seed}) "
               f"written to '{report.destination}'")
    click.echo(f"test songs: the {report.test_data_count} that collection.test_data_count = "
               f"{report.test_data_count} selects; see {report.destination / 'demo.json'}")
