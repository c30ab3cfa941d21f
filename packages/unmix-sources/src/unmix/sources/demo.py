"""Demo data: a small collection of real music, rendered the same way every time, for a first run.

A new user (and `nox -s demo`) needs songs whose target really plays, whose mix is exactly
target + rest, and that need no download. So the notes come from real compositions in music21's
bundled corpus and the sound from a General MIDI SoundFont played by FluidSynth, one stem at a time.

Decisions, for whoever extends this:

- Pieces: corpus works with 3 to 16 parts, by anyone but the Bachs (the corpus is mostly Bach
  chorales, which all sound alike), and none of the corpus's teaching demos or multi-tune ABC books.
  Composers take turns (in an order shuffled by the seed) so that a small collection still
  spans string quartets, madrigals, masses and songs instead of 24 Palestrina movements.
- Each song draws its own tempo, transposition, excerpt, target part, instruments and levels from
  a generator seeded with (seed, song index), so parallel rendering cannot change the result.
  A piece is skipped (and the next candidate taken) when it is shorter than the excerpt, when no
  part plays through at least half of it, or when a rendered stem comes out silent.
- Rendering: FluidSynth's fast renderer with reverb and chorus off and float output, so nothing
  random (and no dither) enters; then mono, trimmed or padded to the excerpt, the same fades on
  both stems, the target scaled to its drawn target-to-rest level, both scaled together so that
  target, rest and their sum peak at -1.5 dBFS, and written as 16-bit wav. The same seed and
  settings give byte-identical files for the same music21, FluidSynth and SoundFont (their
  versions are recorded in demo.json).
- Not a dataset plugin: `register_datasets` registers layouts that *read* folders, and the demo
  *writes* one in the layout that the "unmixio" layout plugin then reads. It is offered through
  `unmix datasets demo` and `make_demo` only.
- Split: unmix orders songs by the md5 of their folder name and tests on the last
  `collection.test_data_count`, so a configuration with test_data_count = N tests on the N songs
  that demo.json lists under split.test for that N (20% of the songs, at least one).
- `force` replaces only the song folders this run writes and demo.json; anything else in the
  destination is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from unmix.core.errors import UnmixError

TARGETS: dict[str, tuple[int, ...]] = {
    "guitar": (24, 25, 26, 27),
    "piano": (0, 1, 2),
    "vocals": (52, 53, 54),
}
# Median MIDI pitch window that each target instrument sounds natural in; its part moves by octaves into it.
TARGET_RANGES: dict[str, tuple[int, int]] = {"guitar": (52, 71), "piano": (55, 76), "vocals": (55, 72)}
# The rest never uses a target's family, so "guitar" always means the guitar alone.
UPPER_PROGRAMS = (40, 41, 48, 49, 68, 69, 71, 73, 56, 60, 61, 16, 19)
BASS_PROGRAMS = (42, 43, 70, 57, 58, 32, 33, 19)
PROGRAM_NAMES = {
    0: "acoustic grand piano", 1: "bright acoustic piano", 2: "electric grand piano",
    16: "drawbar organ", 19: "church organ", 24: "nylon guitar", 25: "steel guitar",
    26: "jazz electric guitar", 27: "clean electric guitar", 32: "acoustic bass", 33: "fingered electric bass",
    40: "violin", 41: "viola", 42: "cello", 43: "contrabass", 48: "string ensemble", 49: "slow strings",
    52: "choir aahs", 53: "voice oohs", 54: "synth voice", 56: "trumpet", 57: "trombone", 58: "tuba",
    60: "french horn", 61: "brass section", 68: "oboe", 69: "english horn", 70: "bassoon", 71: "clarinet",
    73: "flute",
}

DEFAULT_SONGS = 24
DEFAULT_SAMPLE_RATE = 22050
SECONDS_RANGE = (20.0, 30.0)
MAX_SECONDS = 120.0
TEMPO_RANGE = (70, 140)
TRANSPOSITION = 5
LEVEL_DB = 3.0
PEAK_DBFS = -1.5
TEST_FRACTION = 0.2
SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf3"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
)
INSTALL_RENDERER = "apt-get install fluidsynth fluid-soundfont-gm (macOS: brew install fluid-synth)"
INSTALL_MUSIC21 = "pip install 'unmix-sources[demo]'"

_EXCLUDED_FOLDERS = frozenset({"bach", "cpebach", "demos", "theoryExercises"})
_PART_COUNT = (3, 16)
_EXCERPT_TRIES = 3
_CANDIDATES_PER_SONG = 12
_MIN_COVERAGE = 0.5
_SILENCE_RMS = 1e-4
_FADE_IN, _FADE_OUT = 0.01, 0.25
_TICKS_PER_SECOND = 960  # 480 ticks per quarter at the MIDI default of 120 bpm
_CHANNELS = tuple(channel for channel in range(16) if channel != 9)  # channel 10 is GM percussion


class DemoError(UnmixError):
    """The demo collection cannot be made: bad settings, a missing renderer, SoundFont or music21."""


# --------------------------------------------------------------------------------------------
# Records


@attrs.frozen
class Piece:
    """A corpus work that may become a song; only its path travels to the worker, which parses it."""

    path: str
    composer: str
    title: str


@attrs.frozen
class Note:
    start: float
    end: float
    pitch: int


@attrs.frozen
class Voice:
    """One part as it will sound: its notes in seconds, GM program and loudness."""

    part: str
    program: int
    velocity: int
    notes: tuple[Note, ...]


@attrs.frozen
class DemoSettings:
    songs: int = DEFAULT_SONGS
    seconds: float | None = attrs.field(default=None, converter=attrs.converters.optional(float))
    target: str = "guitar"
    seed: int = 0
    sample_rate: int = DEFAULT_SAMPLE_RATE
    excluded_pieces: tuple[str, ...] = attrs.field(default=(), converter=lambda pieces: tuple(sorted(set(pieces))))
    """Corpus paths no song may use: another collection's pieces, so that this one holds music it never saw."""


@attrs.frozen
class Renderer:
    executable: str
    soundfont: Path
    version: str


@attrs.frozen
class SongTask:
    """Everything a worker process needs for one song, so that workers share no state."""

    index: int
    name_width: int
    candidates: tuple[Piece, ...]
    settings: DemoSettings
    renderer: Renderer
    destination: Path


@attrs.frozen
class DemoSong:
    name: str
    piece: Piece
    target_part: str
    target_program: int
    rest: tuple[tuple[str, int], ...]
    transposition: int
    tempo_bpm: int
    start_quarter: float
    seconds: float
    target_to_rest_db: float
    files: tuple[tuple[str, str, str], ...]  # (role, file name, sha256)
    skipped: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "piece": self.piece.path,
            "composer": self.piece.composer,
            "title": self.piece.title,
            "target_part": self.target_part,
            "target_program": self.target_program,
            "target_instrument": PROGRAM_NAMES.get(self.target_program, ""),
            "rest_parts": [{"part": part, "program": program, "instrument": PROGRAM_NAMES.get(program, "")}
                           for part, program in self.rest],
            "transposition": self.transposition,
            "tempo_bpm": self.tempo_bpm,
            "start_quarter": self.start_quarter,
            "seconds": self.seconds,
            "target_to_rest_db": self.target_to_rest_db,
            "files": {role: {"file": f"{self.name}/{file}", "sha256": digest} for role, file, digest in self.files},
            "skipped_pieces": list(self.skipped),
        }


@attrs.frozen
class DemoReport:
    destination: Path
    settings: DemoSettings
    songs: tuple[DemoSong, ...]
    test: tuple[str, ...]

    @property
    def test_data_count(self) -> int:
        return len(self.test)


# --------------------------------------------------------------------------------------------
# Checks


def check_settings(settings: DemoSettings) -> None:
    """Reject settings before anything slow runs, naming the option to change."""
    if settings.target not in TARGETS:
        raise DemoError(f"unknown demo target '{settings.target}': use one of {', '.join(sorted(TARGETS))}")
    if settings.songs < 1:
        raise DemoError(f"--songs must be at least 1, got {settings.songs}")
    if settings.seconds is not None and not 1 <= settings.seconds <= MAX_SECONDS:
        raise DemoError(f"--seconds must be between 1 and {MAX_SECONDS:g}, got {settings.seconds:g}")
    if not 8000 <= settings.sample_rate <= 96000:
        raise DemoError(f"--sample-rate must be between 8000 and 96000 Hz (FluidSynth's range), "
                        f"got {settings.sample_rate}")


def check_destination(destination: Path, force: bool) -> None:
    if destination.exists() and not destination.is_dir():
        raise DemoError(f"'{destination}' is a file, not a folder: choose another destination")
    if destination.is_dir() and not force and any(destination.iterdir()):
        raise DemoError(f"'{destination}' exists and is not empty: choose an empty or new folder, "
                        "or pass --force to replace the demo songs in it")


def find_renderer(soundfont: Path | None = None) -> Renderer:
    """FluidSynth and a General MIDI SoundFont, or an error that says how to install them."""
    executable = shutil.which("fluidsynth")
    if executable is None:
        raise DemoError(f"FluidSynth is not installed (no 'fluidsynth' on PATH), the demo needs it to play "
                        f"the music: {INSTALL_RENDERER}")
    if soundfont is not None:
        if not soundfont.is_file():
            raise DemoError(f"SoundFont '{soundfont}' does not exist: pass a General MIDI .sf2 file to "
                            f"--soundfont, or install one with {INSTALL_RENDERER}")
        check_soundfont(soundfont)
        return Renderer(executable, soundfont, _fluidsynth_version(executable))
    for candidate in SOUNDFONTS:
        if candidate.is_file():
            return Renderer(executable, candidate, _fluidsynth_version(executable))
    raise DemoError(f"no General MIDI SoundFont found (looked for {SOUNDFONTS[0]} and {len(SOUNDFONTS) - 1} "
                    f"other places): {INSTALL_RENDERER}, or pass --soundfont FILE.sf2")


def check_soundfont(path: Path) -> None:
    """Refuse a file that is not a SoundFont (RIFF 'sfbk'): FluidSynth would skip it with a warning and
    play its own default SoundFont instead, so the songs would not sound like the file demo.json names."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(12)
    except OSError as error:
        raise DemoError(f"cannot read the SoundFont '{path}': {error.strerror or error}; pass a readable "
                        ".sf2 file to --soundfont") from None
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise DemoError(f"'{path}' is not a SoundFont (no RIFF 'sfbk' header): pass a General MIDI .sf2 or .sf3 "
                        f"file to --soundfont, or install one with {INSTALL_RENDERER}")


def _fluidsynth_version(executable: str) -> str:
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30)
    found = re.search(r"version\s+(\S+)", result.stdout)
    return found.group(1) if found else "unknown"


def require_music21() -> Any:
    try:
        import music21
    except ImportError:
        raise DemoError(f"music21 is not installed, the demo takes its music from music21's corpus: "
                        f"{INSTALL_MUSIC21}") from None
    return music21


# --------------------------------------------------------------------------------------------
# Choosing pieces


def list_pieces() -> list[Piece]:
    """Candidate works from the corpus's own metadata, so choosing does not parse hundreds of scores."""
    from music21 import corpus

    low, high = _PART_COUNT
    bundle = corpus.corpora.CoreCorpus().metadataBundle.search(
        lambda parts: parts is not None and low <= int(parts) <= high, field="numberOfParts")
    pieces: dict[str, Piece] = {}
    for entry in _entries(bundle):
        path = Path(entry.sourcePath).as_posix()
        folder = path.split("/")[0]
        if folder in _EXCLUDED_FOLDERS or entry.number is not None:
            continue
        meta = entry.metadata
        key = path.rsplit(".", 1)[0]  # one movement may come as both .mxl and .krn: keep the first
        if key not in pieces:
            pieces[key] = Piece(path=path, composer=str(meta.composer or folder), title=str(meta.bestTitle or key))
    return sorted(pieces.values(), key=lambda piece: piece.path)


def _entries(bundle: Any) -> Iterable[Any]:
    # MetadataBundle indexes by rebuilding a list per item; its search result iterates quickly this way.
    entries = getattr(bundle, "_metadataEntries", None)
    return entries.values() if entries is not None else list(bundle)


def order_pieces(pieces: Sequence[Piece], seed: int) -> list[Piece]:
    """Composers take turns, so a handful of songs already spans several styles."""
    dice = random.Random(f"unmix-demo-order:{seed}")
    by_composer: dict[str, list[Piece]] = {}
    for piece in pieces:
        by_composer.setdefault(piece.path.split("/")[0], []).append(piece)
    queues = [by_composer[name] for name in sorted(by_composer)]
    for queue in queues:
        dice.shuffle(queue)
    dice.shuffle(queues)
    ordered = []
    for round_index in range(max(len(queue) for queue in queues)):
        ordered.extend(queue[round_index] for queue in queues if round_index < len(queue))
    return ordered


def candidates_for(index: int, songs: int, ordered: Sequence[Piece]) -> tuple[Piece, ...]:
    """Song i tries pieces i, i + songs, i + 2 songs, ...: no two songs share a piece while there are enough."""
    return tuple(ordered[(index + step * songs) % len(ordered)] for step in range(_CANDIDATES_PER_SONG))


# --------------------------------------------------------------------------------------------
# From score to voices


@attrs.frozen
class _PartNotes:
    name: str
    notes: tuple[tuple[float, float, int], ...]  # (start quarter, end quarter, MIDI pitch)

    def median_pitch(self) -> float:
        return float(np.median([pitch for _, _, pitch in self.notes])) if self.notes else 60.0


def read_parts(path: str) -> tuple[list[_PartNotes], list[float]] | None:
    """The notes of each part in quarter notes, and where the measures start (excerpts begin there).

    None when music21 cannot read the file: one odd corpus file must not stop the demo.
    """
    from music21 import corpus, stream
    from music21.exceptions21 import Music21Exception

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            score = corpus.parse(path, forceSource=True)
        except Music21Exception:
            return None
    parts = [_PartNotes(name=str(part.partName or f"part {index + 1}"), notes=tuple(sorted(_tied_notes(part))))
             for index, part in enumerate(score.parts)]
    measures = sorted({float(measure.offset) for measure in score.parts[0].getElementsByClass(stream.Measure)})
    return parts, measures


def _tied_notes(part: Any) -> list[tuple[float, float, int]]:
    """(start, end, pitch) with tied notes joined into one; music21's stripTies does this, several times slower."""
    notes: list[tuple[float, float, int]] = []
    open_ties: dict[int, int] = {}  # pitch -> index in notes of the note its tie continues
    for element in part.flatten().notes:
        length = float(element.quarterLength)
        if length <= 0:
            continue  # grace notes have no length of their own
        start = float(element.offset)
        for note in getattr(element, "notes", None) or (element,):
            if getattr(note, "pitch", None) is None:
                continue  # unpitched percussion
            pitch = int(note.pitch.midi)
            tie = note.tie.type if note.tie is not None else None
            if tie in ("continue", "stop") and pitch in open_ties:
                index = open_ties[pitch]
                notes[index] = (notes[index][0], start + length, pitch)
                if tie == "stop":
                    del open_ties[pitch]
                continue
            notes.append((start, start + length, pitch))
            if tie == "start":
                open_ties[pitch] = len(notes) - 1
    return notes


def coverage(notes: Iterable[tuple[float, float, int]], start: float, end: float) -> float:
    """The share of [start, end) during which at least one of the notes sounds."""
    intervals = sorted((max(a, start), min(b, end)) for a, b, _ in notes if b > start and a < end)
    covered, reach = 0.0, start
    for a, b in intervals:
        if b > reach:
            covered += b - max(a, reach)
            reach = b
    return covered / (end - start)


def excerpt_notes(
    part: _PartNotes, start: float, end: float, seconds_per_quarter: float, shift: int
) -> tuple[Note, ...]:
    """Notes inside the excerpt, in seconds from its start; notes already sounding restart at zero."""
    notes = []
    for a, b, pitch in part.notes:
        if b <= start or a >= end:
            continue
        notes.append(Note(start=(max(a, start) - start) * seconds_per_quarter,
                          end=(min(b, end) - start) * seconds_per_quarter,
                          pitch=int(np.clip(pitch + shift, 21, 108))))
    return tuple(notes)


def octave_shift(median: float, low: int, high: int) -> int:
    """Whole octaves that bring a part's median pitch into [low, high] (or as near as they can)."""
    shift = 0
    while median + shift < low:
        shift += 12
    while median + shift > high:
        shift -= 12
    return shift


@attrs.frozen
class _Plan:
    target: Voice
    rest: tuple[Voice, ...]
    transposition: int
    tempo_bpm: int
    start_quarter: float
    seconds: float
    target_to_rest_db: float


def plan_song(parts: Sequence[_PartNotes], measures: Sequence[float], settings: DemoSettings,
              dice: random.Random) -> _Plan | None:
    """Draw one song from a parsed piece, or None when the piece cannot give a song with these settings."""
    if len(parts) < _PART_COUNT[0]:
        return None
    tempo = dice.randint(*TEMPO_RANGE)
    seconds = settings.seconds if settings.seconds is not None else round(dice.uniform(*SECONDS_RANGE), 1)
    transposition = dice.randint(-TRANSPOSITION, TRANSPOSITION)
    level_db = round(dice.uniform(-LEVEL_DB, LEVEL_DB), 1)
    quarters = seconds * tempo / 60.0
    length = max((b for part in parts for _, b, _ in part.notes), default=0.0)
    starts = [offset for offset in (measures or range(int(length))) if offset + quarters <= length]
    for _ in range(min(_EXCERPT_TRIES, len(starts))):
        start = dice.choice(starts)
        end = start + quarters
        playing = [i for i, part in enumerate(parts) if coverage(part.notes, start, end) >= _MIN_COVERAGE]
        if not playing:
            continue
        chosen = dice.choice(playing)
        others = [part for i, part in enumerate(parts) if i != chosen]
        if coverage([note for part in others for note in part.notes], start, end) < _MIN_COVERAGE:
            continue
        seconds_per_quarter = 60.0 / tempo
        target_part = parts[chosen]
        shift = transposition + octave_shift(target_part.median_pitch() + transposition,
                                             *TARGET_RANGES[settings.target])
        target = Voice(part=target_part.name, program=dice.choice(TARGETS[settings.target]),
                       velocity=dice.randint(85, 110),
                       notes=excerpt_notes(target_part, start, end, seconds_per_quarter, shift))
        programs = rest_programs(others, dice)
        rest = tuple(Voice(part=part.name, program=program, velocity=dice.randint(70, 110),
                           notes=excerpt_notes(part, start, end, seconds_per_quarter, transposition))
                     for part, program in zip(others, programs, strict=True))
        return _Plan(target=target, rest=rest, transposition=transposition, tempo_bpm=tempo,
                     start_quarter=float(start), seconds=float(seconds), target_to_rest_db=level_db)
    return None


def rest_programs(parts: Sequence[_PartNotes], dice: random.Random) -> list[int]:
    """The lowest part gets a bass instrument, the others distinct upper ones: an ensemble, not a blur."""
    upper = list(UPPER_PROGRAMS)
    dice.shuffle(upper)
    lowest = min(range(len(parts)), key=lambda i: parts[i].median_pitch())
    bass = dice.choice(BASS_PROGRAMS)
    upper = [program for program in upper if program != bass]
    return [bass if i == lowest else upper[i % len(upper)] for i in range(len(parts))]


# --------------------------------------------------------------------------------------------
# Rendering


def midi_bytes(voices: Sequence[Voice], seconds: float) -> bytes:
    """A type-0 standard MIDI file of the voices, one channel each, ending at `seconds`."""
    events: list[tuple[int, int, bytes]] = []  # (tick, order: programs, note-offs, then note-ons; message)
    for channel, voice in zip(_CHANNELS, voices, strict=False):
        events.append((0, 0, bytes([0xC0 | channel, voice.program])))
        for note in voice.notes:
            on, off = _tick(note.start), _tick(note.end)
            if off > on:
                events.append((on, 2, bytes([0x90 | channel, note.pitch, voice.velocity])))
                events.append((off, 1, bytes([0x80 | channel, note.pitch, 0])))
    track = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20")  # tempo 500000 us per quarter: 120 bpm
    previous = 0
    for tick, _, message in sorted(events):
        track += _variable_length(tick - previous) + message
        previous = tick
    track += _variable_length(max(0, _tick(seconds) - previous)) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, _TICKS_PER_SECOND // 2)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def _tick(seconds: float) -> int:
    return int(round(seconds * _TICKS_PER_SECOND))


def _variable_length(value: int) -> bytes:
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(groups))


def render(voices: Sequence[Voice], seconds: float, sample_rate: int, renderer: Renderer, folder: Path) -> np.ndarray:
    """Play the voices through the SoundFont and return mono float64 samples of exactly `seconds`."""
    import soundfile

    midi, wav = folder / "voices.mid", folder / "voices.wav"
    midi.write_bytes(midi_bytes(voices, seconds))
    command = [renderer.executable, "-n", "-i", "-q", "-R", "0", "-C", "0", "-r", str(sample_rate),
               "-O", "float", "-T", "wav", "-F", str(wav), str(renderer.soundfont), str(midi)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if "not a SoundFont" in result.stderr or "Failed to load SoundFont" in result.stderr:
        raise DemoError(f"FluidSynth cannot load the SoundFont '{renderer.soundfont}' (it would play its default "
                        "one instead): pass a working General MIDI .sf2 file to --soundfont")
    if result.returncode != 0 or not wav.is_file():
        reason = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        raise DemoError(f"FluidSynth could not render with '{renderer.soundfont}': {reason}; "
                        f"reinstall it with {INSTALL_RENDERER}")
    samples, _ = soundfile.read(wav, dtype="float64", always_2d=True)
    wav.unlink()
    return fit_length(samples.mean(axis=1), int(round(seconds * sample_rate)))


def fit_length(samples: np.ndarray, frames: int) -> np.ndarray:
    if len(samples) >= frames:
        return samples[:frames]
    return np.pad(samples, (0, frames - len(samples)))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0


def balance(target: np.ndarray, rest: np.ndarray, target_to_rest_db: float,
            sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Set the target's level against the rest, fade both alike, and keep target, rest and mix below full scale.

    Every step multiplies both stems by the same envelope (or the target by a constant before the
    shared ones), so the mix a trainer builds as target + rest is the mix these stems were made for.
    """
    target = target * (10 ** (target_to_rest_db / 20) * rms(rest) / rms(target))
    envelope = fade_envelope(len(target), sample_rate)
    target, rest = target * envelope, rest * envelope
    peak = max(np.max(np.abs(target + rest)), np.max(np.abs(target)), np.max(np.abs(rest)))
    scale = 10 ** (PEAK_DBFS / 20) / peak
    return target * scale, rest * scale


def fade_envelope(frames: int, sample_rate: int) -> np.ndarray:
    """Short fades, because an excerpt cut mid-note clicks."""
    envelope = np.ones(frames)
    fade_in = min(frames // 4, int(_FADE_IN * sample_rate))
    fade_out = min(frames // 4, int(_FADE_OUT * sample_rate))
    if fade_in:
        envelope[:fade_in] = np.linspace(0.0, 1.0, fade_in, endpoint=False)
    if fade_out:
        envelope[frames - fade_out:] = np.linspace(1.0, 0.0, fade_out)
    return envelope


# --------------------------------------------------------------------------------------------
# Songs


def song_name(index: int, width: int, piece: Piece) -> str:
    """Folder names that sort in song order and say what the song is, in characters every file system takes."""
    stem = re.sub(r"[^a-z0-9]+", "-", piece.path.rsplit(".", 1)[0].lower()).strip("-")
    return f"{index + 1:0{width}d}-{stem}"


def make_song(task: SongTask) -> DemoSong:
    """Try the song's candidate pieces in order until one renders into two audible stems."""
    settings = task.settings
    dice = random.Random(f"unmix-demo-song:{settings.seed}:{task.index}")
    skipped = []
    with tempfile.TemporaryDirectory(prefix="unmix-demo-") as scratch:
        for piece in task.candidates:
            parsed = read_parts(piece.path)
            plan = plan_song(*parsed, settings, dice) if parsed is not None else None
            if plan is None:
                skipped.append(piece.path)
                continue
            target = render([plan.target], plan.seconds, settings.sample_rate, task.renderer, Path(scratch))
            rest = render(plan.rest, plan.seconds, settings.sample_rate, task.renderer, Path(scratch))
            if rms(target) < _SILENCE_RMS or rms(rest) < _SILENCE_RMS:
                skipped.append(piece.path)
                continue
            target, rest = balance(target, rest, plan.target_to_rest_db, settings.sample_rate)
            name = song_name(task.index, task.name_width, piece)
            files = write_song(task.destination / name, name, settings, target, rest)
            return DemoSong(name=name, piece=piece, target_part=plan.target.part,
                            target_program=plan.target.program,
                            rest=tuple((voice.part, voice.program) for voice in plan.rest),
                            transposition=plan.transposition, tempo_bpm=plan.tempo_bpm,
                            start_quarter=plan.start_quarter, seconds=plan.seconds,
                            target_to_rest_db=plan.target_to_rest_db, files=files, skipped=tuple(skipped))
    raise DemoError(f"none of {len(task.candidates)} corpus pieces gave demo song {task.index + 1} "
                    f"({', '.join(skipped[:3])}, ...): try fewer --seconds or another --seed")


def write_song(folder: Path, name: str, settings: DemoSettings, target: np.ndarray,
               rest: np.ndarray) -> tuple[tuple[str, str, str], ...]:
    """The unmixio layout: <target>_<song>.wav and rest_<song>.wav, each written whole or not at all."""
    from unmix.core.data.audio import Audio, save_audio

    if folder.is_dir():
        shutil.rmtree(folder)  # only reached with force: the destination was empty otherwise
    elif folder.exists():
        folder.unlink()
    folder.mkdir(parents=True)
    files = []
    for role, samples in ((settings.target, target), ("rest", rest)):
        path = folder / f"{role}_{name}.wav"
        save_audio(path, Audio(samples.astype(np.float32), settings.sample_rate), subtype="PCM_16")
        files.append((role, path.name, sha256(path)))
    return tuple(files)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# The collection


def make_demo(
    destination: str | os.PathLike[str],
    *,
    songs: int = DEFAULT_SONGS,
    seconds: float | None = None,
    target: str = "guitar",
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    excluded_pieces: Sequence[str] = (),
    force: bool = False,
    soundfont: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    progress: bool = False,
) -> DemoReport:
    """Write the demo collection into `destination` (see the module docs) and describe it in demo.json.

    `seconds` None draws each song's length from 20-30 s; `jobs` None renders on every CPU.
    """
    destination = Path(destination)
    settings = DemoSettings(songs=songs, seconds=seconds, target=target, seed=seed, sample_rate=sample_rate,
                            excluded_pieces=excluded_pieces)
    check_settings(settings)
    if jobs is not None and jobs < 1:
        raise DemoError(f"--jobs must be at least 1, got {jobs}")
    check_destination(destination, force)
    music21 = require_music21()
    renderer = find_renderer(Path(soundfont) if soundfont is not None else None)
    ordered = [piece for piece in order_pieces(list_pieces(), seed) if piece.path not in settings.excluded_pieces]
    if not ordered:
        raise DemoError(f"music21 {music21.__version__} lists no multi-part corpus pieces: reinstall it with "
                        f"{INSTALL_MUSIC21}")
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DemoError(f"cannot create '{destination}': {error.strerror or error}; choose another destination") \
            from None
    width = max(2, len(str(songs)))
    tasks = [SongTask(index=index, name_width=width, candidates=candidates_for(index, songs, ordered),
                      settings=settings, renderer=renderer, destination=destination)
             for index in range(songs)]
    made = run_tasks(tasks, jobs, progress)
    test = suggested_test(made)
    report = DemoReport(destination=destination, settings=settings, songs=tuple(made), test=test)
    write_description(report, renderer, music21.__version__)
    return report


def pieces_of(collection: str | os.PathLike[str]) -> list[str]:
    """The corpus pieces the songs of a demo collection play (from its demo.json)."""
    description = Path(collection) / "demo.json"
    try:
        return [song["piece"] for song in json.loads(description.read_text(encoding="utf-8"))["songs"]]
    except FileNotFoundError:
        raise DemoError(f"'{collection}' has no demo.json; give a collection made by `unmix datasets demo`") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DemoError(f"cannot read the pieces of '{description}' ({error}); make that collection again") from None


def run_tasks(tasks: Sequence[SongTask], jobs: int | None, progress: bool) -> list[DemoSong]:
    """Songs in parallel processes; the result keeps the song order whatever order they finish in.

    All tasks are submitted before the progress bar exists, so the worker processes are forked
    before tqdm starts its monitor thread (forking a threaded process can deadlock).
    """
    from tqdm import tqdm

    workers = max(1, min(jobs or _cpus(), len(tasks)))
    if workers == 1:
        with tqdm(total=len(tasks), desc="demo songs", unit="song", disable=not progress) as bar:
            return [_advance(bar, make_song(task)) for task in tasks]
    results: dict[int, DemoSong] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(make_song, task): task.index for task in tasks}
        with tqdm(total=len(tasks), desc="demo songs", unit="song", disable=not progress) as bar:
            try:
                for future in as_completed(futures):
                    results[futures[future]] = _advance(bar, future.result())
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return [results[index] for index in sorted(results)]


def _cpus() -> int:
    """CPUs this process may use: a container or taskset can allow fewer than the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _advance(bar: Any, song: DemoSong) -> DemoSong:
    bar.update(1)
    return song


def suggested_test(songs: Sequence[DemoSong]) -> tuple[str, ...]:
    """The songs unmix itself tests on with collection.test_data_count = 20% of the songs."""
    from unmix.core.data.collection import order_songs

    count = max(1, round(len(songs) * TEST_FRACTION)) if len(songs) > 1 else 0
    ordered = order_songs(songs)
    return tuple(song.name for song in ordered[len(ordered) - count:])


def write_description(report: DemoReport, renderer: Renderer, music21_version: str) -> None:
    """demo.json: what each song is and how it was made; no paths or times, so it is as reproducible as the audio."""
    from unmix.core.files import write_json_atomically

    settings = report.settings
    names = [song.name for song in report.songs]
    description = {
        "generator": "unmix datasets demo",
        "layout": "unmixio",
        "settings": attrs.asdict(settings),
        "versions": {"music21": music21_version, "fluidsynth": renderer.version,
                     "soundfont": renderer.soundfont.name, "soundfont_bytes": renderer.soundfont.stat().st_size,
                     "unmix-sources": _version("unmix-sources")},
        "split": {
            "rule": "unmix orders songs by the md5 of their folder name and tests on the last "
                    "collection.test_data_count; set it to test_data_count to test on these songs",
            "test_data_count": report.test_data_count,
            "test": list(report.test),
            "training": [name for name in names if name not in report.test],
        },
        "songs": [song.describe() for song in report.songs],
    }
    write_json_atomically(report.destination / "demo.json", description)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


__all__ = ["DemoError", "DemoReport", "DemoSong", "TARGETS", "make_demo"]
