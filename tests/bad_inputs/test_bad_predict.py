"""The bad-input catalogue of `unmix predict`: every case is the real command on a real bad input.

Each case asserts exit code 2, one `unmix: error:` line naming the culprit, no traceback, and that
every file that existed before (songs, earlier outputs, the run folder) is unchanged, with no
half-written file left in the output folder.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile

from tests.bad_inputs.catalogue import (
    assert_clean_failure,
    assert_untouched,
    leftovers,
    run_unmix,
    snapshot,
    write_tone,
)

# Trains a run and runs the real `unmix` command on it; the fast subset skips this module.
pytestmark = pytest.mark.slow


def predict(trained, *arguments: str) -> subprocess.CompletedProcess[str]:
    run, environment = trained
    return run_unmix("predict", "--run-folder", str(run), *arguments, env=environment)


def refused(trained, tmp_path, arguments: list[str], *fragments: str) -> str:
    """Run predict into tmp_path/out and check the failure left every existing file alone."""
    run, _ = trained
    output = tmp_path / "out"
    before = snapshot(tmp_path, run)
    line = assert_clean_failure(predict(trained, *arguments, "--output", str(output)), *fragments)
    assert_untouched(before, tmp_path, run)
    assert not output.exists() or not any(output.iterdir()), "nothing may be written for a refused input"
    return line


def test_zero_length_wav(trained, tmp_path):
    song = tmp_path / "empty.wav"
    song.write_bytes(b"")
    refused(trained, tmp_path, ["--song", str(song)], "empty.wav", "empty (0 bytes)")


def test_header_only_wav(trained, tmp_path):
    song = tmp_path / "header.wav"
    soundfile.write(song, np.zeros((0, 1), np.float32), 8000)
    refused(trained, tmp_path, ["--song", str(song)], "header.wav", "no audio samples")


def test_a_folder_named_like_a_wav_file(trained, tmp_path):
    (tmp_path / "x.wav").mkdir()
    refused(trained, tmp_path, ["--song", str(tmp_path / "x.wav")], "x.wav", "no audio files")


def test_an_output_folder_that_is_a_file(trained, tmp_path):
    song = write_tone(tmp_path / "song.wav")
    (tmp_path / "taken").write_text("a file, not a folder")
    before = snapshot(tmp_path)
    result = predict(trained, "--song", str(song), "--output", str(tmp_path / "taken"))
    assert_clean_failure(result, "taken", "it is a file", "--output")
    assert_untouched(before, tmp_path)


def test_a_run_folder_that_does_not_exist(trained, tmp_path):
    _, environment = trained
    song = write_tone(tmp_path / "song.wav")
    result = run_unmix("predict", "--run-folder", str(tmp_path / "missing"), "--song", str(song), env=environment)
    assert_clean_failure(result, "missing", "does not exist")


def test_a_folder_that_is_not_a_run_folder(trained, tmp_path):
    _, environment = trained
    song = write_tone(tmp_path / "songs" / "song.wav")
    before = snapshot(tmp_path)
    result = run_unmix("predict", "--run-folder", str(tmp_path / "songs"), "--song", str(song), env=environment)
    assert_clean_failure(result, "songs", "is not a run folder")
    assert_untouched(before, tmp_path)


def test_a_file_with_an_unknown_extension_that_is_not_audio(trained, tmp_path):
    notes = tmp_path / "notes.xyz"
    notes.write_text("these are notes, not audio")
    refused(trained, tmp_path, ["--song", str(notes)], "notes.xyz", "not audio that unmix can read")


def test_a_missing_file_with_an_unknown_extension(trained, tmp_path):
    refused(trained, tmp_path, ["--song", str(tmp_path / "gone.xyz")], "gone.xyz", "neither an existing audio file")


def test_a_uri_nobody_claims(trained, tmp_path):
    refused(trained, tmp_path, ["--song", "nosuch://song"], "nosuch://song", "sources:")


def test_nan_samples_name_the_file_and_the_absolute_sample(trained, tmp_path):
    song = tmp_path / "song.wav"
    samples = np.random.default_rng(0).normal(0, 0.1, (80000, 2)).astype(np.float32)
    samples[70001, 1] = np.nan  # past the first decoded block: the position is counted across blocks
    soundfile.write(song, samples, 8000, subtype="FLOAT")
    refused(trained, tmp_path, ["--song", str(song)], "song.wav", "sample 70001 of channel 1 is NaN",
            "repair or remove the file")


def test_infinite_samples(trained, tmp_path):
    song = tmp_path / "loud.wav"
    samples = np.zeros(8000, np.float32)
    samples[12] = -np.inf
    soundfile.write(song, samples, 8000, subtype="FLOAT")
    refused(trained, tmp_path, ["--song", str(song)], "loud.wav", "sample 12 of channel 0 is -inf")


@pytest.mark.parametrize("template", ["../{song}_{stem}.{ext}", "/tmp/{song}_{stem}.{ext}", "a/../../{song}{stem}"])
def test_a_file_name_template_that_leads_outside_the_output(trained, tmp_path, template):
    song = write_tone(tmp_path / "song.wav")
    refused(trained, tmp_path, ["--song", str(song), "--filename", template], "--filename", "outside the output")


def test_a_file_name_template_with_an_unknown_field(trained, tmp_path):
    song = write_tone(tmp_path / "song.wav")
    refused(trained, tmp_path, ["--song", str(song), "--filename", "{title}_{stem}.{ext}"], "--filename", "{title}")


def test_existing_outputs_are_refused_without_overwrite(trained, tmp_path):
    song = write_tone(tmp_path / "song.wav")
    output = tmp_path / "out"
    write_tone(output / "song_vocals.wav", frequency=220)
    write_tone(output / "song_rest.wav", frequency=330)
    before = snapshot(tmp_path)
    result = predict(trained, "--song", str(song), "--output", str(output))
    assert_clean_failure(result, "2 output files already exist", "song_vocals.wav", "song_rest.wav", "--overwrite")
    assert_untouched(before, tmp_path)


def test_an_input_is_never_overwritten_even_with_overwrite(trained, tmp_path):
    songs = tmp_path / "songs"
    write_tone(songs / "live.wav")
    write_tone(songs / "live_rest.wav", frequency=220)  # the user's own file, not an output
    before = snapshot(tmp_path)
    result = predict(trained, "--songs", str(songs), "--output", str(songs), "--overwrite")
    assert_clean_failure(result, "live_rest.wav", "which is an input song", "even with --overwrite")
    assert_untouched(before, tmp_path)


def test_two_songs_that_would_write_the_same_file(trained, tmp_path):
    write_tone(tmp_path / "songs" / "a.wav")
    write_tone(tmp_path / "songs" / "b.wav")
    refused(trained, tmp_path, ["--songs", str(tmp_path / "songs"), "--filename", "{stem}.{ext}"],
            "'a' and 'b' would both write", "include {song}")


@pytest.mark.parametrize(("extension", "codec"), [("mp3", "libmp3lame"), ("m4a", "aac")])
def test_an_ffmpeg_format_truncated_halfway(trained, tmp_path, extension, codec):
    """A truncated mp3 still decodes up to the cut, so it separates; an m4a loses its index and is refused."""
    wav = write_tone(tmp_path / "source.wav", seconds=4.0)
    whole = tmp_path / f"whole.{extension}"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", codec, str(whole)], check=True)
    song = tmp_path / f"cut.{extension}"
    data = whole.read_bytes()
    song.write_bytes(data[: len(data) // 2])
    output = tmp_path / "out"
    result = predict(trained, "--song", str(song), "--output", str(output))
    if extension == "mp3":
        assert result.returncode == 0, result.stderr
        vocals, rate = soundfile.read(output / "cut_vocals.wav")
        assert rate == 8000 and 0 < len(vocals) < 4 * 8000
    else:
        assert_clean_failure(result, "cut.m4a", "truncated or corrupt")
        assert not output.exists() or not any(output.iterdir())
    assert not leftovers(tmp_path)
