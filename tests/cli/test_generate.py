"""`unmix generate` through the installed command: output, exit codes, bad input, killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

# Every case runs the real `unmix` command in a subprocess (about a second each); the fast subset skips them.
pytestmark = pytest.mark.slow

UNMIX = str(Path(sys.executable).with_name("unmix"))


def unmix(*arguments: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([UNMIX, *map(str, arguments)], capture_output=True, text=True, cwd=cwd, timeout=120)


def tone(seconds: float, rate: int, frequency: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * frequency * t)
    return np.stack([wave] * channels, axis=1).astype(np.float32)


def seed_song(root: Path, name: str, *, rate: int = 8000, seconds: float = 0.5, channels: int = 1,
              extension: str = ".wav") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for role, frequency in (("vocals", 440.0), ("rest", 220.0)):
        path = folder / f"{role}_{name}{extension}"
        if extension == ".mp3":
            wav = folder / f"{role}.source.wav"
            soundfile.write(wav, tone(seconds, rate, frequency, channels), rate)
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), str(path)], check=True)
            wav.unlink()
        else:
            soundfile.write(path, tone(seconds, rate, frequency, channels), rate)
    return folder


def assert_one_error_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("unmix: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def valid_cache(data: Path) -> dict[str, dict]:
    """Every song in the index has complete arrays of the recorded shape."""
    index = json.loads((data / "index.json").read_text())
    for entry in index["songs"].values():
        for name in ("target.npy", "rest.npy"):
            array = np.load(data / entry["folder"] / name, mmap_mode="r")
            assert array.dtype == np.float32 and array.shape == (entry["channels"], entry["frames"])
    return index["songs"]


def test_generate_then_run_again_skips_every_song(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    seed_song(raw, "one", rate=16000, channels=2)
    seed_song(raw, "two", rate=16000, channels=2, extension=".mp3")

    first = unmix("generate", "--path", raw, "--destination", data, "--sample-rate", "8000", "--channels", "2",
                  "--jobs", "2")

    assert first.returncode == 0, first.stderr
    assert "2 songs cached in" in first.stdout and "2 generated, 0 already done" in first.stdout
    assert "8000 Hz, stereo, target 'vocals'" in first.stdout
    songs = valid_cache(data)
    assert {entry["channels"] for entry in songs.values()} == {2}
    files = {path: path.stat().st_mtime_ns for path in data.rglob("*") if path.is_file()}

    second = unmix("generate", "--path", raw, "--destination", data, "--sample-rate", "8000", "--channels", "2")

    assert second.returncode == 0, second.stderr
    assert "0 generated, 2 already done" in second.stdout
    assert {path: path.stat().st_mtime_ns for path in data.rglob("*") if path.is_file()} == files


def test_a_killed_run_resumes_and_leaves_no_half_written_song(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    seed_song(raw, "song0", seconds=0.2, rate=22050)
    for index in range(1, 6):  # long enough that the run is still busy after the first song
        seed_song(raw, f"song{index}", seconds=20, rate=44100, channels=2, extension=".flac")
    command = [UNMIX, "generate", "--path", str(raw), "--destination", str(data), "--jobs", "1",
               "--sample-rate", "22050", "--channels", "2"]

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if json.loads((data / "index.json").read_text())["songs"]:
                    break
            except (OSError, ValueError, KeyError):
                pass  # not written yet (it is replaced atomically, so never half-read)
            time.sleep(0.002)
        assert process.poll() is None, "the run finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    done = valid_cache(data)
    assert 1 <= len(done) < 6

    again = unmix(*command[1:])

    assert again.returncode == 0, again.stderr
    assert f"{6 - len(done)} generated, {len(done)} already done" in again.stdout
    songs = valid_cache(data)
    assert sorted(songs) == [f"raw/song{index}" for index in range(6)]
    assert songs["raw/song3"]["frames"] == 20 * 22050
    assert not list(data.rglob("*.tmp"))


def test_bad_songs_are_reported_and_the_good_ones_cached(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    seed_song(raw, "good")
    (seed_song(raw, "empty") / "vocals_empty.wav").write_bytes(b"")
    (seed_song(raw, "text") / "rest_text.wav").write_text("not audio at all\n" * 40)
    mp3 = seed_song(raw, "truncated", extension=".mp3") / "vocals_truncated.mp3"
    mp3.write_bytes(mp3.read_bytes()[:300])
    lonely = raw / "lonely"
    lonely.mkdir()
    soundfile.write(lonely / "vocals_lonely.wav", tone(0.5, 8000, 440), 8000)
    short = seed_song(raw, "short")
    soundfile.write(short / "rest_short.wav", tone(0.8, 8000, 220), 8000)  # longer than its vocals

    result = unmix("generate", "--path", raw, "--destination", tmp_path / "data", "--sample-rate", "8000")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("unmix: skipped ")]
    assert len(skipped) == 4
    text = "\n".join(skipped)
    for fragment in ("vocals_empty.wav", "is empty", "rest_text.wav", "vocals_truncated.mp3",
                     "'vocals_lonely.wav' has no rest stem"):
        assert fragment in text
    assert "unmix: warning: raw/short: stems differ in length" in result.stderr
    assert "2 songs cached" in result.stdout and "4 skipped" in result.stdout
    assert sorted(valid_cache(tmp_path / "data")) == ["raw/good", "raw/short"]


def test_no_usable_song_exits_2_with_one_line(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (seed_song(raw, "empty") / "rest_empty.wav").write_bytes(b"")

    result = unmix("generate", "--path", raw, "--destination", tmp_path / "data", "--sample-rate", "8000")

    assert_one_error_line(result, "no song from", "1 skipped")
    assert "unmix: skipped" in result.stderr and "rest_empty.wav" in result.stderr


@pytest.mark.parametrize("case", ["no songs", "missing path", "destination under a file", "destination is a file",
                                  "other settings"])
def test_user_mistakes_exit_2_with_one_line(tmp_path: Path, case: str) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    raw.mkdir()
    (raw / "readme.txt").write_text("no audio here")
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    if case == "no songs":
        result = unmix("generate", "--path", raw, "--destination", data)
        assert_one_error_line(result, "no songs for target 'vocals' found in", str(raw))
        assert not data.exists()
        return
    if case == "missing path":
        result = unmix("generate", "--path", tmp_path / "nowhere", "--destination", data)
        assert_one_error_line(result, "nowhere", "does not exist")
        return
    seed_song(raw, "song")
    if case == "destination under a file":
        result = unmix("generate", "--path", raw, "--destination", blocker / "data", "--sample-rate", "8000")
        assert_one_error_line(result, "cannot write the cache to", "blocker/data", "writable destination")
    elif case == "destination is a file":
        result = unmix("generate", "--path", raw, "--destination", blocker, "--sample-rate", "8000")
        assert_one_error_line(result, "is a file, not a folder")
    else:
        assert unmix("generate", "--path", raw, "--destination", data, "--sample-rate", "8000").returncode == 0
        result = unmix("generate", "--path", raw, "--destination", data, "--sample-rate", "16000")
        assert_one_error_line(result, "holds 8000 Hz, mono", "asks for 16000 Hz, mono", "another destination")


def test_the_command_is_listed_with_its_options() -> None:
    result = unmix("generate", "--help")
    assert result.returncode == 0
    for option in ("--path", "--destination", "--sample-rate", "--channels", "--jobs", "--target", "--dataset"):
        assert option in result.stdout
    bad = unmix("generate", "--path", "x", "--destination", "y", "--channels", "3")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def write_long_tone(path: Path, minutes: int, frequency: float, rate: int = 8000) -> None:
    """A long 16-bit wav written a minute at a time, so the test itself stays small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(path, "w", rate, 1, subtype="PCM_16") as handle:
        for minute in range(minutes):
            t = (minute * 60 * rate + np.arange(60 * rate)) / rate
            handle.write((0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32))


def peak_memory_of_generate(raw: Path, data: Path) -> int:
    """Peak resident memory (bytes) of one `unmix generate`, measured in a fresh parent process so that
    RUSAGE_CHILDREN holds that run alone."""
    measure = ("import resource, subprocess, sys\n"
               "result = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "assert result.returncode == 0, result.stderr\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", measure, UNMIX, "generate", "--path", str(raw), "--destination",
                             str(data), "--sample-rate", "12000", "--jobs", "1"],
                            capture_output=True, text=True, timeout=300, check=True)
    return int(result.stdout) * 1024  # Linux reports kilobytes


def test_memory_does_not_grow_with_the_length_of_the_song(tmp_path: Path) -> None:
    peaks = {}
    for minutes in (1, 20):
        raw = tmp_path / f"raw{minutes}"
        write_long_tone(raw / "song" / "vocals_song.wav", minutes, 440.0)
        write_long_tone(raw / "song" / "rest_song.wav", minutes, 220.0)
        peaks[minutes] = peak_memory_of_generate(raw, tmp_path / f"data{minutes}")

    decoded_extra = 2 * 19 * 60 * 12000 * 4  # the 19 extra minutes of both stems, resampled, as float32
    assert valid_cache(tmp_path / "data20")["raw20/song"]["frames"] == 20 * 60 * 12000
    assert peaks[20] - peaks[1] < decoded_extra / 10, (peaks, decoded_extra)
