"""The demo collection (`unmix datasets demo`): real music, rendered deterministically, in the unmixio layout.

These tests need FluidSynth, the fluid-soundfont-gm SoundFont and music21 (CI installs them). They
fail, rather than skip, when one is missing: a silently skipped demo is how a broken first run ships.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.helpers import assert_one_line_error, clean_environment, run_unmix
from unmix.core.data.collection import find_tracks
from unmix.sources import demo
from unmix.sources.demo import DemoError, make_demo

# Renders demo songs with FluidSynth or runs `unmix datasets demo`; the fast subset skips this module.
pytestmark = pytest.mark.slow

SONGS, SECONDS, SEED, RATE = 2, 3, 7, 22050


def checksums(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*.wav"))}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny collection made by the real command, as a user would."""
    destination = tmp_path_factory.mktemp("demo") / "collection"
    result = run_unmix("datasets", "demo", str(destination), "--songs", str(SONGS), "--seconds", str(SECONDS),
                       "--seed", str(SEED))
    assert result.returncode == 0, result.stderr
    assert f"{SONGS} demo songs (guitar, {SECONDS} s, {RATE} Hz, seed {SEED})" in result.stdout
    return destination


def test_the_renderer_and_soundfont_are_installed() -> None:
    renderer = demo.find_renderer()  # fails with the apt-get line when either is missing
    assert renderer.soundfont.name == "FluidR3_GM.sf2"
    demo.require_music21()


def test_layout_is_the_unmixio_layout_with_one_folder_per_song(rendered: Path) -> None:
    folders = sorted(path for path in rendered.iterdir() if path.is_dir())
    assert len(folders) == SONGS
    assert sorted(path.name for path in rendered.iterdir() if path.is_file()) == ["demo.json"]
    for folder in folders:
        assert sorted(path.name for path in folder.iterdir()) == [f"guitar_{folder.name}.wav",
                                                                   f"rest_{folder.name}.wav"]
    tracks = find_tracks(rendered, "guitar", "unmixio")
    assert [track.name for track in tracks] == [folder.name for folder in folders]


def test_stems_are_mono_equally_long_audible_and_their_mix_peaks_below_minus_1_dbfs(rendered: Path) -> None:
    for folder in sorted(path for path in rendered.iterdir() if path.is_dir()):
        target, target_rate = soundfile.read(folder / f"guitar_{folder.name}.wav", always_2d=True)
        rest, rest_rate = soundfile.read(folder / f"rest_{folder.name}.wav", always_2d=True)
        assert target_rate == rest_rate == RATE
        assert target.shape == rest.shape == (SECONDS * RATE, 1)
        for stem in (target, rest):
            assert np.sqrt(np.mean(stem**2)) > 0.01, folder.name
            quarters = np.array_split(stem[:, 0], 4)  # audible through the excerpt, not in one corner
            assert sum(np.abs(part).max() > 0.01 for part in quarters) >= 3, folder.name
        assert np.abs(target + rest).max() < 10 ** (-1 / 20)


def test_demo_json_describes_the_songs_their_checksums_and_the_test_split(rendered: Path) -> None:
    description = json.loads((rendered / "demo.json").read_text())
    songs = description["songs"]
    assert description["settings"] == {"songs": SONGS, "seconds": SECONDS, "target": "guitar", "seed": SEED,
                                       "sample_rate": RATE, "excluded_pieces": []}
    assert [song["name"] for song in songs] == sorted(path.name for path in rendered.iterdir() if path.is_dir())
    files = checksums(rendered)
    for song in songs:
        assert not song["piece"].startswith(("bach/", "cpebach/"))
        assert song["target_program"] in demo.TARGETS["guitar"]
        assert len(song["rest_parts"]) >= 2
        assert -5 <= song["transposition"] <= 5 and 70 <= song["tempo_bpm"] <= 140
        assert -3 <= song["target_to_rest_db"] <= 3
        for stem in song["files"].values():
            assert files[stem["file"]] == stem["sha256"]
    split = description["split"]
    assert split["test_data_count"] == len(split["test"]) == 1
    assert sorted(split["test"] + split["training"]) == sorted(song["name"] for song in songs)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_music(rendered: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    make_demo(again, songs=SONGS, seconds=SECONDS, seed=SEED, jobs=1)  # in-process and serial this time
    assert checksums(again) == checksums(rendered)
    assert (again / "demo.json").read_bytes() == (rendered / "demo.json").read_bytes()

    other = tmp_path / "other"
    make_demo(other, songs=SONGS, seconds=SECONDS, seed=SEED + 1)
    assert not set(checksums(other).values()) & set(checksums(rendered).values())


def test_a_held_out_collection_plays_none_of_another_collections_pieces(rendered: Path, tmp_path: Path) -> None:
    held_out = tmp_path / "held-out"
    result = run_unmix("datasets", "demo", str(held_out), "--songs", str(SONGS), "--seconds", str(SECONDS),
                       "--seed", str(SEED), "--exclude-pieces-of", str(rendered))
    assert result.returncode == 0, result.stderr
    used = set(demo.pieces_of(rendered))
    assert not used & set(demo.pieces_of(held_out))
    assert json.loads((held_out / "demo.json").read_text())["settings"]["excluded_pieces"] == sorted(used)
    refused = run_unmix("datasets", "demo", str(tmp_path / "other"), "--exclude-pieces-of", str(tmp_path))
    assert_one_line_error(refused, "has no demo.json")


def test_force_replaces_only_the_songs_it_writes(rendered: Path, tmp_path: Path) -> None:
    destination = tmp_path / "collection"
    song = sorted(path.name for path in rendered.iterdir() if path.is_dir())[0]
    (destination / song).mkdir(parents=True)
    (destination / song / "stale.wav").write_bytes(b"old")
    (destination / "notes.txt").write_text("mine")

    make_demo(destination, songs=SONGS, seconds=SECONDS, seed=SEED, force=True)

    assert checksums(destination) == checksums(rendered)
    assert (destination / "notes.txt").read_text() == "mine"


def test_other_targets_name_their_stems_after_the_target(tmp_path: Path) -> None:
    report = make_demo(tmp_path / "vocals", songs=1, seconds=2, target="vocals", seed=1)
    name = report.songs[0].name
    assert sorted(path.name for path in (tmp_path / "vocals" / name).iterdir()) == [f"rest_{name}.wav",
                                                                                    f"vocals_{name}.wav"]
    assert report.songs[0].target_program in demo.TARGETS["vocals"]


def test_a_non_empty_destination_without_force_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    result = run_unmix("datasets", "demo", str(tmp_path), "--songs", "1")
    assert_one_line_error(result, str(tmp_path), "not empty", "--force")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine.txt"]


def test_an_unknown_target_is_refused(tmp_path: Path) -> None:
    result = run_unmix("datasets", "demo", str(tmp_path / "new"), "--target", "drums")
    assert_one_line_error(result, "drums", "guitar, piano, vocals")
    assert not (tmp_path / "new").exists()


def test_a_missing_fluidsynth_says_how_to_install_it(tmp_path: Path) -> None:
    environment = clean_environment(PATH=str(Path(sys.executable).parent))
    result = run_unmix("datasets", "demo", str(tmp_path / "new"), env=environment)
    assert_one_line_error(result, "FluidSynth", "apt-get install fluidsynth fluid-soundfont-gm")


def test_a_missing_soundfont_says_how_to_install_one(tmp_path: Path) -> None:
    result = run_unmix("datasets", "demo", str(tmp_path / "new"), "--soundfont", str(tmp_path / "none.sf2"))
    assert_one_line_error(result, "none.sf2", "fluid-soundfont-gm")


def test_a_file_that_is_not_a_soundfont_is_refused_before_anything_is_rendered(tmp_path: Path) -> None:
    fake = tmp_path / "fake.sf2"
    fake.write_text("FluidSynth would skip this and play its default SoundFont instead\n")

    result = run_unmix("datasets", "demo", str(tmp_path / "new"), "--soundfont", str(fake))

    assert_one_line_error(result, "fake.sf2", "is not a SoundFont", "--soundfont")
    assert not (tmp_path / "new").exists()


def test_a_missing_music21_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "music21", None)  # makes `import music21` fail
    with pytest.raises(DemoError, match=r"pip install 'unmix-sources\[demo\]'"):
        make_demo(tmp_path / "new", songs=1)


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"songs": 0}, "--songs"), ({"seconds": 0.5}, "--seconds"), ({"sample_rate": 4000}, "--sample-rate"),
    ({"jobs": 0}, "--jobs"),
])
def test_out_of_range_settings_name_the_option(tmp_path: Path, settings: dict[str, float], fragment: str) -> None:
    with pytest.raises(DemoError, match=fragment):
        make_demo(tmp_path / "new", **settings)


def test_coverage_counts_overlapping_notes_once() -> None:
    notes = [(0.0, 2.0, 60), (1.0, 3.0, 64), (5.0, 6.0, 67)]
    assert demo.coverage(notes, 0.0, 8.0) == pytest.approx(4 / 8)
    assert demo.coverage(notes, 2.5, 4.5) == pytest.approx(0.5 / 2)


def test_the_midi_file_is_well_formed() -> None:
    voice = demo.Voice(part="p", program=25, velocity=90, notes=(demo.Note(0.0, 0.5, 60), demo.Note(0.5, 1.0, 62)))
    data = demo.midi_bytes([voice], 1.0)
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    assert int.from_bytes(data[18:22], "big") == len(data) - 22
    assert data.endswith(b"\xff\x2f\x00")
    assert os.path.basename(demo.SOUNDFONTS[0]) == "FluidR3_GM.sf2"
