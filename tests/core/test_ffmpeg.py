"""The one ffmpeg/ffprobe module that whole-file loading, prediction's reader and the cache share."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from unmix.core.data import ffmpeg
from unmix.core.data.ffmpeg import FfmpegError, RawDecoder, StreamFormat, decode_file, error_line, probe

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg is not installed"
)


def make(*arguments: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *arguments], check=True)


@pytest.fixture(scope="module")
def two_streams(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lossless file with a mono 22050 Hz stream and a stereo 44100 Hz stream, like a small .stem.mp4."""
    path = tmp_path_factory.mktemp("ffmpeg") / "two.mka"
    make("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050:duration=1",
         "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100:duration=1",
         "-map", "0", "-map", "1", "-ac:a:1", "2", "-c:a", "flac", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def noisy_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minute of mp3 with most frames overwritten: ffmpeg writes more errors than a pipe holds (64 KiB)."""
    folder = tmp_path_factory.mktemp("noisy")
    make("-f", "lavfi", "-i", "sine=frequency=440:duration=60", "-c:a", "libmp3lame", str(folder / "song.mp3"))
    data = bytearray((folder / "song.mp3").read_bytes())
    for start in range(4096, len(data), 1024):
        data[start : start + 600] = bytes(600)
    (folder / "bad.mp3").write_bytes(bytes(data))
    return folder / "bad.mp3"


def garbage(folder: Path) -> Path:
    path = folder / "notes.m4a"
    path.write_bytes(b"not audio at all\n" * 100)
    return path


def test_error_line_keeps_the_last_complaint_without_the_file_name():
    path = Path("/music/song.m4a")
    text = "\n  first problem\n/music/song.m4a: Invalid data found when processing input.\n\n"
    assert error_line(text, path) == "Invalid data found when processing input"
    assert error_line(text) == "/music/song.m4a: Invalid data found when processing input"
    assert error_line("Error opening '/music/song.m4a': Format not recognised.", path) == "Format not recognised"
    assert error_line(" \n") == ""


def test_installed_needs_every_tool():
    assert ffmpeg.installed("ffmpeg", "ffprobe")
    assert not ffmpeg.installed("ffmpeg", "no-such-tool-unmix")


def test_probe_reads_each_stream(two_streams):
    assert probe(two_streams, 0) == StreamFormat(sample_rate=22050, channels=1)
    assert probe(two_streams, 1) == StreamFormat(sample_rate=44100, channels=2)


def test_probe_tells_a_missing_stream_from_an_unreadable_file(two_streams, tmp_path):
    with pytest.raises(FfmpegError) as missing:
        probe(two_streams, 2)
    assert missing.value.missing_stream
    with pytest.raises(FfmpegError) as unreadable:
        probe(garbage(tmp_path), 0)
    assert not unreadable.value.missing_stream
    assert unreadable.value.returncode != 0
    assert error_line(unreadable.value.stderr) != ""


def test_decode_file_keeps_native_rate_and_layout(two_streams):
    first, first_rate = decode_file(two_streams, 0)
    second, second_rate = decode_file(two_streams, 1)
    assert (first.shape, first_rate) == ((1, 22050), 22050)
    assert (second.shape, second_rate) == ((2, 44100), 44100)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(second[0], second[1])
    default, _ = decode_file(two_streams)
    np.testing.assert_array_equal(default, first)


def test_decode_file_failures(two_streams, tmp_path):
    with pytest.raises(FfmpegError) as missing:
        decode_file(two_streams, 3)
    assert missing.value.missing_stream
    with pytest.raises(FfmpegError) as unreadable:
        decode_file(garbage(tmp_path))
    assert not unreadable.value.missing_stream
    assert "Invalid data" in error_line(unreadable.value.stderr)


def test_raw_decoder_streams_the_same_samples_in_bounded_blocks(two_streams):
    whole, rate = decode_file(two_streams, 1)
    with RawDecoder(two_streams, 1, rate, 2) as decoder:
        blocks = list(decoder.blocks(1000))
    assert all(block.shape[0] == 2 and block.shape[1] <= 1000 for block in blocks)
    assert len(blocks) == 45
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole)
    assert decoder.complaint() == ""


def test_raw_decoder_converts_rate_and_channels_on_request(two_streams):
    with RawDecoder(two_streams, 0, 44100, 2) as decoder:
        samples = np.concatenate(list(decoder.blocks(4096)), axis=1)
    assert samples.shape == (2, 44100)


def test_raw_decoder_reports_why_nothing_came(tmp_path):
    with RawDecoder(garbage(tmp_path), 0, 44100, 2) as decoder:
        assert list(decoder.blocks(1024)) == []
    assert "Invalid data" in decoder.complaint()


def test_raw_decoder_survives_more_errors_than_a_pipe_holds(noisy_mp3):
    """Unread stderr used to fill its pipe and stall ffmpeg, and the reader with it."""
    frames: list[int] = []
    with RawDecoder(noisy_mp3, 0, 44100, 1) as decoder:
        reader = threading.Thread(target=lambda: frames.extend(block.shape[1] for block in decoder.blocks(4096)))
        reader.start()
        reader.join(60)
        assert not reader.is_alive(), "the decoder stalled"
    assert sum(frames) > 0
    assert decoder.complaint() != ""


def test_leaving_early_stops_ffmpeg(two_streams):
    with RawDecoder(two_streams, 1, 44100, 2) as decoder:
        first = next(decoder.blocks(100))
    assert first.shape == (2, 100)
    assert decoder._process.returncode is not None
