"""Dataset layouts of unmix-sources, on real files: unmixio (wav, flac, mp3), stems and MUSDB18 .stem.mp4."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import stempeg

from tests.helpers import CONFIGURATIONS, clean_environment, run_unmix
from unmix.core.data.collection import find_tracks, infer_target, scan_tracks
from unmix.core.data.tracks import StemFile
from unmix.core.errors import PluginError, UnmixError
from unmix.core.plugins import plugin_manager
from unmix.sources.datasets import MusdbStemDataset, StemsDataset, UnmixioDataset
from unmix.sources.mixers import RatioMixer

RATE = 8000


def write_tone(path: Path, seconds: float = 0.5, frequency: float = 440.0, rate: int = RATE) -> Path:
    """A short sine in any format: soundfile for wav/flac, ffmpeg for everything else (mp3, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    if path.suffix in (".wav", ".flac"):
        soundfile.write(path, samples, rate)
    else:
        wav = path.with_name(path.name + ".source.wav")
        soundfile.write(wav, samples, rate)
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), str(path)], check=True)
        wav.unlink()
    return path


def test_the_plugin_registers_the_layouts_and_the_ratio_mixer() -> None:
    manager = plugin_manager()
    assert isinstance(manager.get("datasets", "unmixio"), UnmixioDataset)
    assert isinstance(manager.get("datasets", "stems"), StemsDataset)
    assert isinstance(manager.get("datasets", "musdb-stem"), MusdbStemDataset)
    assert isinstance(manager.get("mixers", "ratio"), RatioMixer)
    assert manager.infos["sources"].distribution == "unmix-sources"


def test_importing_the_plugin_module_stays_light() -> None:
    code = "import sys, unmix.sources.plugin; print('numpy' in sys.modules, 'soundfile' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_unmixio_layout_in_wav_flac_and_mp3(tmp_path: Path) -> None:
    root = tmp_path / "collection"
    for song, extension in (("alpha", ".wav"), ("beta", ".flac"), ("gamma", ".mp3")):
        write_tone(root / song / f"vocals_{song}{extension}")
        write_tone(root / song / f"rest_{song}{extension}", frequency=220)
    (root / "alpha" / "notes.txt").write_text("not audio")

    tracks = find_tracks(root, "vocals", "unmixio")

    assert [track.name for track in tracks] == ["alpha", "beta", "gamma"]
    assert {track.collection for track in tracks} == {"collection"}
    gamma = tracks[2]
    assert gamma.folder == root / "gamma"
    assert gamma.target == (StemFile(root / "gamma" / "vocals_gamma.mp3"),)
    assert gamma.rest == (StemFile(root / "gamma" / "rest_gamma.mp3"),)


def test_unmixio_layout_uses_the_configured_target_and_searches_recursively(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    write_tone(root / "pop" / "one" / "guitar_one.wav")
    write_tone(root / "pop" / "one" / "rest_one.wav")
    write_tone(root / "rock" / "deep" / "two" / "Guitar_two.WAV")  # names match case-insensitively
    write_tone(root / "rock" / "deep" / "two" / "REST_two.wav")

    tracks = find_tracks(root, "guitar", "unmixio")

    assert [(t.collection, t.name) for t in tracks] == [("pop", "one"), ("rock/deep", "two")]
    assert find_tracks(root, "vocals", "unmixio") == []


def test_instrumental_is_the_rest_for_vocals_and_rest_wins_when_both_exist(tmp_path: Path) -> None:
    root = tmp_path / "unmix.io"
    write_tone(root / "song" / "vocals_song.mp3")
    write_tone(root / "song" / "instrumental_song.mp3")
    write_tone(root / "both" / "vocals_both.wav")
    write_tone(root / "both" / "instrumental_both.wav")
    write_tone(root / "both" / "rest_both.wav")

    tracks = {track.name: track for track in find_tracks(root, "vocals", "unmixio")}

    assert tracks["song"].rest == (StemFile(root / "song" / "instrumental_song.mp3"),)
    assert tracks["both"].rest == (StemFile(root / "both" / "rest_both.wav"),)


def test_instrumental_is_not_the_rest_of_another_instrument(tmp_path: Path) -> None:
    # "instrumental" contains the guitar, so it cannot serve as the rest of a guitar track.
    write_tone(tmp_path / "song" / "guitar_song.wav")
    write_tone(tmp_path / "song" / "instrumental_song.wav")

    scan = scan_tracks(tmp_path, "guitar", "unmixio")

    assert scan.tracks == ()
    assert len(scan.skipped) == 1 and "no rest stem" in scan.skipped[0].reason


def test_a_song_folder_without_its_rest_stem_is_reported(tmp_path: Path) -> None:
    write_tone(tmp_path / "complete" / "vocals_complete.wav")
    write_tone(tmp_path / "complete" / "rest_complete.wav")
    write_tone(tmp_path / "lonely" / "vocals_lonely.wav")

    scan = scan_tracks(tmp_path, "vocals", "auto")

    assert [track.name for track in scan.tracks] == ["complete"]
    [skipped] = scan.skipped
    assert skipped.path == tmp_path / "lonely"
    assert "'vocals_lonely.wav' has no rest stem" in skipped.reason
    assert "rest_<song>" in skipped.reason


def test_several_songs_in_one_folder_are_paired_by_name(tmp_path: Path) -> None:
    for song in ("a", "b"):
        write_tone(tmp_path / "flat" / f"vocals_{song}.wav")
        write_tone(tmp_path / "flat" / f"rest_{song}.wav")

    tracks = find_tracks(tmp_path, "vocals", "unmixio")

    assert [(t.collection, t.name) for t in tracks] == [("flat", "a"), ("flat", "b")]
    assert tracks[1].rest == (StemFile(tmp_path / "flat" / "rest_b.wav"),)


def test_lossless_file_is_preferred_when_a_stem_exists_twice(tmp_path: Path) -> None:
    write_tone(tmp_path / "song" / "vocals_song.mp3")
    write_tone(tmp_path / "song" / "vocals_song.wav")
    write_tone(tmp_path / "song" / "rest_song.wav")

    [track] = find_tracks(tmp_path, "vocals", "unmixio")

    assert track.target == (StemFile(tmp_path / "song" / "vocals_song.wav"),)


def test_stems_layout_target_against_all_other_stems(tmp_path: Path) -> None:
    song = tmp_path / "musdb-hq" / "Some Artist - Song"
    for stem in ("vocals.wav", "drums.wav", "bass.flac", "other.mp3", "mixture.wav"):
        write_tone(song / stem)
    (song / "cover.jpg").write_bytes(b"\xff\xd8")

    [track] = find_tracks(tmp_path / "musdb-hq", "vocals", "stems")

    assert track.name == "Some Artist - Song"
    assert track.collection == "musdb-hq"
    assert track.target == (StemFile(song / "vocals.wav"),)
    assert track.rest == tuple(StemFile(song / name) for name in ("bass.flac", "drums.wav", "other.mp3"))

    [drums] = find_tracks(tmp_path / "musdb-hq", "drums", "stems")
    assert StemFile(song / "vocals.wav") in drums.rest and StemFile(song / "drums.wav") not in drums.rest


def test_stems_layout_without_other_stems_is_reported(tmp_path: Path) -> None:
    write_tone(tmp_path / "song" / "vocals.wav")
    write_tone(tmp_path / "song" / "mixture.wav")

    scan = scan_tracks(tmp_path, "vocals", "stems")

    assert scan.tracks == ()
    assert "no other stems" in scan.skipped[0].reason


@pytest.fixture(scope="module")
def example_stem() -> Path:
    return Path(stempeg.example_stem_path())


def test_musdb_stem_file_is_one_track_of_streams(tmp_path: Path, example_stem: Path) -> None:
    folder = tmp_path / "musdb18" / "train"
    folder.mkdir(parents=True)
    copy = folder / example_stem.name
    shutil.copy(example_stem, copy)

    [track] = find_tracks(tmp_path / "musdb18", "vocals", "musdb-stem")

    assert track.name == "The Easton Ellises - Falcon 69"
    assert track.collection == "train"
    assert track.target == (StemFile(copy, 4),)
    assert track.rest == (StemFile(copy, 1), StemFile(copy, 2), StemFile(copy, 3))
    [drums] = find_tracks(tmp_path / "musdb18", "DRUMS", "musdb-stem")
    assert drums.target == (StemFile(copy, 1),)


def test_musdb_stem_file_for_an_instrument_it_does_not_hold(tmp_path: Path, example_stem: Path) -> None:
    shutil.copy(example_stem, tmp_path / example_stem.name)

    scan = scan_tracks(tmp_path, "piano", "musdb-stem")

    assert scan.tracks == ()
    assert "drums, bass, other, vocals" in scan.skipped[0].reason


def test_auto_combines_every_layout_without_counting_a_song_twice(tmp_path: Path, example_stem: Path) -> None:
    root = tmp_path / "mixed"
    write_tone(root / "unmixio-song" / "vocals_unmixio-song.wav")
    write_tone(root / "unmixio-song" / "rest_unmixio-song.wav")
    write_tone(root / "stem-song" / "vocals.flac")
    write_tone(root / "stem-song" / "drums.flac")
    (root / "musdb").mkdir(parents=True)
    shutil.copy(example_stem, root / "musdb" / example_stem.name)

    tracks = find_tracks(root, "vocals")

    assert [(t.collection, t.name) for t in tracks] == [
        ("mixed", "stem-song"), ("mixed", "unmixio-song"), ("musdb", "The Easton Ellises - Falcon 69"),
    ]
    files = [stem.path for track in tracks for stem in (*track.target, *track.rest) if stem.stream is None]
    assert len(files) == len(set(files))


def test_the_old_name_seed_is_the_unmixio_layout(tmp_path: Path) -> None:
    assert plugin_manager().get("datasets", "seed") is plugin_manager().get("datasets", "unmixio")
    write_tone(tmp_path / "song" / "guitar_song.wav")
    write_tone(tmp_path / "song" / "rest_song.wav")
    assert [track.name for track in find_tracks(tmp_path, "guitar", "seed")] == ["song"]


def test_auto_asks_a_layout_registered_under_two_names_once(tmp_path: Path) -> None:
    for song, target in (("a", "guitar"), ("b", "guitar"), ("c", "piano")):
        write_tone(tmp_path / song / f"{target}_{song}.wav")
        write_tone(tmp_path / song / f"rest_{song}.wav")
    # Counted once per layout, the songs would be counted twice (guitar (4 songs)).
    with pytest.raises(UnmixError, match=r"found targets guitar \(2 songs\), piano \(1 song\):"):
        infer_target(tmp_path)


def test_a_configuration_naming_the_old_layout_still_checks(tmp_path: Path) -> None:
    configuration = tmp_path / "old.jsonc"
    configuration.write_text('{"base": "quickstart.jsonc", "collection": {"dataset": "seed"}}')
    result = run_unmix("config", "check", str(configuration),
                       env=clean_environment(UNMIX_CONFIGURATIONS_DIR=str(CONFIGURATIONS)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_errors_name_the_folder_or_the_layout(tmp_path: Path) -> None:
    with pytest.raises(UnmixError, match="does not exist"):
        find_tracks(tmp_path / "missing", "vocals")
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(UnmixError, match="not a folder"):
        find_tracks(tmp_path / "file.wav", "vocals")
    with pytest.raises(PluginError, match=r"unknown dataset 'unmixo'.*did you mean 'unmixio'"):
        find_tracks(tmp_path, "vocals", "unmixo")
    assert find_tracks(tmp_path, "vocals") == []


def test_unmixio_layout_names_the_targets_its_file_names_designate(tmp_path: Path) -> None:
    for song in ("a", "b"):
        write_tone(tmp_path / song / f"guitar_{song}.wav")
        write_tone(tmp_path / song / f"rest_{song}.wav")
    write_tone(tmp_path / "c" / "lead_vocals_c.flac")
    write_tone(tmp_path / "c" / "rest_c.flac")
    write_tone(tmp_path / "d" / "vocals_d.wav")
    write_tone(tmp_path / "d" / "instrumental_d.wav")
    write_tone(tmp_path / "e" / "piano_e.wav")  # no rest beside it: designates nothing
    write_tone(tmp_path / "f" / "piano_f.wav")
    write_tone(tmp_path / "f" / "instrumental_f.wav")  # instrumental is only the rest of vocals

    assert UnmixioDataset().targets(tmp_path) == {"guitar": 2, "lead_vocals": 1, "vocals": 1}


def test_file_names_with_a_newline_are_paired_like_any_other(tmp_path: Path) -> None:
    write_tone(tmp_path / "songs" / "vocals_first\nsecond.wav")
    write_tone(tmp_path / "songs" / "rest_first\nsecond.wav")

    (track,) = find_tracks(tmp_path, "vocals")

    assert track.name == "songs" and track.target[0].path.name == "vocals_first\nsecond.wav"
