"""Bad training data through the real `unmix generate`, `unmix train` and `unmix datasets demo`.

Each case runs the installed command on real audio files and checks the exit code, the one line that
names the culprit, that no traceback is printed, and that nothing written before was damaged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.bad_inputs.catalogue import (
    assert_clean_failure,
    assert_untouched,
    clean_environment,
    leftovers,
    run_unmix,
    snapshot,
    write_tone,
)
from tests.helpers import ctrl_c_reaches_the_child, unmix_executable
from tests.training_fixtures import gain_plugin_path, write_configuration, write_seed_collection

# Every case runs the real `unmix` command in a subprocess (about a second each); the fast subset skips them.
pytestmark = pytest.mark.slow


def seed_song(root: Path, song: str, target: str = "vocals", seconds: float = 0.5, channels: int = 1) -> Path:
    """A song folder in the unmixio layout: `<target>_<song>.wav` and `rest_<song>.wav`."""
    folder = root / song
    write_tone(folder / f"{target}_{song}.wav", seconds=seconds, channels=channels, frequency=440.0)
    write_tone(folder / f"rest_{song}.wav", seconds=seconds, channels=channels, frequency=220.0)
    return folder


def generate(raw: Path, data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_unmix("generate", "--path", str(raw), "--destination", str(data), "--sample-rate", "8000", *extra)


def skipped_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("unmix: skipped ")]


def cached_songs(data: Path) -> dict[str, dict]:
    return json.loads((data / "index.json").read_text())["songs"]


def write_with_bad_sample(path: Path, value: float, position: int, seconds: float = 0.5) -> Path:
    """A float wav (the only kind that can hold NaN or inf) with one bad sample at `position`."""
    samples = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 8000)) / 8000)
    samples[position] = value
    soundfile.write(path, samples.astype(np.float32), 8000, subtype="FLOAT")
    return path


def test_a_guitar_collection_is_cached_for_guitar_without_being_told(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    for index in range(3):
        seed_song(raw, f"song{index:03d}", target="guitar")

    result = generate(raw, data)

    assert result.returncode == 0, result.stderr
    assert "3 songs cached" in result.stdout and "target 'guitar'" in result.stdout
    assert not skipped_lines(result)
    assert json.loads((data / "index.json").read_text())["target"] == "guitar"


def test_an_explicit_target_wins_over_the_file_names(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    seed_song(raw, "song000", target="guitar")

    result = generate(raw, data, "--target", "vocals")

    assert_clean_failure(result, "no song from", "1 skipped")
    assert "has no target stem: add 'vocals_<song>.<ext>'" in result.stderr


def test_several_targets_are_listed_and_nothing_is_written(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    for index in range(2):
        seed_song(raw, f"g{index}", target="guitar")
    seed_song(raw, "p0", target="piano")
    before = snapshot(raw)

    result = generate(raw, data)

    assert_clean_failure(result, "found targets guitar (2 songs), piano (1 song)", "pass --target")
    assert not data.exists()
    assert_untouched(before, raw)


def test_a_nan_stem_is_skipped_naming_the_file_and_sample_and_the_cache_stays_intact(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    seed_song(raw, "good")
    assert generate(raw, data).returncode == 0
    before = snapshot(data)
    bad = seed_song(raw, "bad")
    write_with_bad_sample(bad / "vocals_bad.wav", np.nan, 1234)

    result = generate(raw, data)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = skipped_lines(result)
    assert "vocals_bad.wav" in line and "sample 1234" in line and "NaN" in line
    assert sorted(cached_songs(data)) == ["raw/good"]
    assert_untouched(before, data)


def test_training_on_a_raw_collection_whose_stems_hold_inf_is_one_clean_error(tmp_path: Path) -> None:
    collection = write_seed_collection(tmp_path / "collection", songs=2, seconds=1.0)
    for song in sorted(collection.iterdir()):
        write_with_bad_sample(song / f"rest_{song.name}.wav", np.inf, 77, seconds=1.0)
    configuration = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=1)
    before = snapshot(collection)
    environment = clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"))

    result = run_unmix("train", str(configuration), "--workingdir", str(tmp_path / "work"), env=environment)

    assert_clean_failure(result, "none of the 2 songs", "rest_song00.wav", "sample 77", "+inf")
    assert_untouched(before, collection)
    assert not (tmp_path / "work" / "runs").exists() or not any((tmp_path / "work" / "runs").rglob("*.npz"))


def test_song_files_and_folders_with_a_newline_in_their_name_are_cached(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    seed_song(raw, "two\nlines")
    files = raw / "plain"
    write_tone(files / "vocals_a\nb.wav")
    write_tone(files / "rest_a\nb.wav", frequency=220.0)

    result = generate(raw, data)

    assert result.returncode == 0, result.stderr
    assert "2 songs cached" in result.stdout and not skipped_lines(result)
    assert sorted(cached_songs(data)) == ["raw/plain", "raw/two\nlines"]


def test_ctrl_c_during_generate_with_two_jobs_exits_130_with_one_line(tmp_path: Path) -> None:
    songs = 40
    raw, data = tmp_path / "raw", tmp_path / "data"
    # Far more work than one song: a busy machine must not finish them all between the first song and
    # the signal (a run that ended before the signal exits 0 and proves nothing).
    for index in range(songs):
        seed_song(raw, f"song{index:02d}", seconds=60.0)
    command = [unmix_executable(), "generate", "--path", str(raw), "--destination", str(data), "--jobs", "2",
               "--sample-rate", "22050"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=clean_environment(), start_new_session=True, preexec_fn=ctrl_c_reaches_the_child)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if json.loads((data / "index.json").read_text())["songs"]:
                    break
            except (OSError, ValueError, KeyError):
                pass  # not written yet (it is replaced atomically)
            time.sleep(0.002)
        assert process.poll() is None, "the run finished before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("unmix: warning:")]
    assert lines == [f"unmix: generate interrupted: the songs finished so far stay cached in '{data}'; run the "
                     "same command again to continue"], stderr
    assert not leftovers(data)
    done = cached_songs(data)
    assert 1 <= len(done) < songs
    for entry in done.values():
        assert np.load(data / entry["folder"] / "target.npy", mmap_mode="r").shape == (1, entry["frames"])


@pytest.mark.parametrize("kind", ["missing", "not a soundfont"])
def test_a_soundfont_that_cannot_be_used_is_refused(tmp_path: Path, kind: str) -> None:
    soundfont = tmp_path / "piano.sf2"
    if kind == "not a soundfont":
        soundfont.write_text("not a SoundFont\n")

    result = run_unmix("datasets", "demo", str(tmp_path / "demo"), "--songs", "1", "--soundfont", str(soundfont))

    assert_clean_failure(result, str(soundfont), "--soundfont")
    assert not (tmp_path / "demo" / "demo.json").exists()


@pytest.mark.parametrize(("section", "key", "value", "fragments"), [
    ("spectrogram_generation", "fft_length", 2 ** 28,
     ("spectrogram_generation.fft_length 268435456 is longer than every song", "use at most 8192")),
    ("transformation", "options", {"size": 2 ** 20, "step": 16},
     ("transformation.options.size 1048576 frames", "use at most 251")),
    ("training", "batch_size", 100000000, ("training.batch_size 100000000 is more than the", "use at most")),
])
def test_sizes_that_make_no_sense_for_the_songs_name_the_key(tmp_path: Path, section: str, key: str, value: object,
                                                              fragments: tuple[str, ...]) -> None:
    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=2.0)
    path = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=1)
    configuration = json.loads(path.read_text().split("\n", 1)[1])
    configuration[section][key] = value
    path.write_text(json.dumps(configuration))
    before = snapshot(collection)
    environment = clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"))

    result = run_unmix("train", str(path), "--workingdir", str(tmp_path / "work"), env=environment)

    line = assert_clean_failure(result, *fragments)
    assert "add songs to collection.folder" not in line
    assert_untouched(before, collection)


def test_zero_length_and_header_only_stems_are_skipped_with_a_reason(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    seed_song(raw, "good")
    (seed_song(raw, "zero") / "vocals_zero.wav").write_bytes(b"")
    soundfile.write(seed_song(raw, "header") / "rest_header.wav", np.zeros((0, 1), np.float32), 8000)

    result = generate(raw, data)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = skipped_lines(result)
    assert len(lines) == 2, result.stderr
    assert "raw/header: 'rest_header.wav' holds a header but no audio samples" in lines[0]
    assert "vocals_zero.wav' is empty (0 bytes)" in lines[1]
    assert sorted(cached_songs(data)) == ["raw/good"]
    assert not leftovers(data) and not (data / "raw" / "zero").exists()


def test_eight_channel_stems_are_mixed_down_keeping_the_centre(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    song = seed_song(raw, "surround")
    centre_only = np.zeros((4000, 8), np.float32)
    centre_only[:, 2] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)  # 7.1: channel 2 is the centre
    soundfile.write(song / "vocals_surround.wav", centre_only, 8000)

    result = generate(raw, data, "--channels", "2")

    assert result.returncode == 0, result.stderr
    target = np.load(data / "raw" / "surround" / "target.npy")
    assert target.shape == (2, 4000)
    assert np.max(np.abs(target[0])) > 0.01 and np.allclose(target[0], target[1])
