"""Stem writers of unmix-sources: every format reads back, peaks are never wrapped (core applies
--peak before a writer sees a block: tests/core/test_prediction.py), the npz writer holds every
stem of a song in one archive, and a file exists whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from unmix.core.errors import AudioError
from unmix.core.interfaces import ExportOptions
from unmix.core.plugins import plugin_manager
from unmix.sources import exporters
from unmix.sources.exporters import (
    FlacExporter,
    Mp3Exporter,
    NpzExporter,
    NpzSongWriter,
    OggExporter,
    StreamingStemWriter,
    WavExporter,
    mp3_compression_level,
    vorbis_compression_level,
)

RATE = 22050
BLOCK = 4000
DEFAULT_OPTIONS = ExportOptions()
STEMS = ("vocals", "rest")
NAMES = {"song": "song", "stem": "vocals", "stems": STEMS}
"""What core passes a per-stem exporter's open(); the audio formats take their names from the path."""


def tone(channels: int, seconds: float = 0.6, amplitude: float = 0.5, rate: int = RATE) -> np.ndarray:
    """A different sine per channel, so swapped or merged channels would show."""
    t = np.arange(int(seconds * rate)) / rate
    rows = [amplitude * np.sin(2 * np.pi * (330.0 + 110.0 * c) * t) for c in range(channels)]
    return np.asarray(rows, dtype=np.float32)


def write_in_blocks(
    exporter: object, path: Path, audio: np.ndarray, options: ExportOptions = DEFAULT_OPTIONS, rate: int = RATE
) -> None:
    writer = exporter.open(path, rate, audio.shape[0], options, **NAMES)  # type: ignore[attr-defined]
    for start in range(0, audio.shape[1], BLOCK):
        writer.write(audio[:, start : start + BLOCK])
    writer.close()


def read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return data.T, rate


def folder_entries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def best_aligned_correlation(original: np.ndarray, decoded: np.ndarray, max_shift: int = 2500) -> float:
    """Codec delay differs between encoders; compare at the best shift within the tolerance."""
    best = -1.0
    for shift in range(0, max_shift, 1):
        length = min(original.size, decoded.size - shift)
        if length < original.size // 2:
            break
        best = max(best, correlation(original[:length], decoded[shift : shift + length]))
        if best > 0.99:
            break
    return best


def test_the_plugin_registers_the_four_writers() -> None:
    registry = plugin_manager().registry("exporters")
    assert {"wav", "flac", "ogg", "mp3"} <= set(registry.names())
    for name in ("wav", "flac", "ogg", "mp3"):
        exporter = registry.get(name)
        assert exporter.name == name and exporter.extension == name


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    ("bit_depth", "subtype", "tolerance"), [("16", "PCM_16", 1e-4), ("24", "PCM_24", 1e-6), ("float", "FLOAT", 0.0)]
)
def test_wav_reads_back_exactly_at_every_depth(
    tmp_path: Path, channels: int, bit_depth: str, subtype: str, tolerance: float
) -> None:
    audio = tone(channels)
    path = tmp_path / "song_vocals.wav"
    write_in_blocks(WavExporter(), path, audio, ExportOptions(bit_depth=bit_depth))

    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (RATE, channels, audio.shape[1], subtype)
    decoded, _ = read(path)
    np.testing.assert_allclose(decoded, audio, atol=tolerance, rtol=0)
    assert folder_entries(tmp_path) == ["song_vocals.wav"]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(("bit_depth", "subtype"), [("16", "PCM_16"), ("24", "PCM_24")])
def test_flac_reads_back_losslessly(tmp_path: Path, channels: int, bit_depth: str, subtype: str) -> None:
    audio = tone(channels)
    path = tmp_path / "song.flac"
    write_in_blocks(FlacExporter(), path, audio, ExportOptions(bit_depth=bit_depth))

    info = soundfile.info(path)
    layout = (info.format, info.subtype, info.samplerate, info.channels, info.frames)
    assert layout == ("FLAC", subtype, RATE, channels, audio.shape[1])
    np.testing.assert_allclose(read(path)[0], audio, atol=1e-4, rtol=0)


def test_flac_refuses_float_samples_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"flac stores 16 or 24-bit.*wav"):
        FlacExporter().open(tmp_path / "song.flac", RATE, 2, ExportOptions(bit_depth="float"), **NAMES)
    assert folder_entries(tmp_path) == []


@pytest.mark.parametrize("channels", [1, 2])
def test_ogg_vorbis_reads_back_with_the_same_layout_and_content(tmp_path: Path, channels: int) -> None:
    audio = tone(channels, seconds=1.0)
    path = tmp_path / "song.ogg"
    write_in_blocks(OggExporter(), path, audio, ExportOptions(bitrate_kbps=128))

    info = soundfile.info(path)
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("OGG", "VORBIS", RATE, channels)
    decoded, _ = read(path)
    assert abs(decoded.shape[1] - audio.shape[1]) <= 2000
    for channel in range(channels):
        assert best_aligned_correlation(audio[channel], decoded[channel]) > 0.99


def mp3_writers() -> list[object]:
    return [
        pytest.param(Mp3Exporter(), id="libsndfile"),
        pytest.param(
            Mp3Exporter(prefer_ffmpeg=True),
            id="ffmpeg",
            marks=pytest.mark.skipif(not exporters.shutil.which("ffmpeg"), reason="ffmpeg is not installed"),
        ),
    ]


@pytest.mark.parametrize("exporter", mp3_writers())
@pytest.mark.parametrize("channels", [1, 2])
def test_mp3_reads_back_within_codec_tolerance(tmp_path: Path, exporter: Mp3Exporter, channels: int) -> None:
    if not exporter._prefer_ffmpeg and not exporters.soundfile_writes_mp3():
        pytest.skip("this libsndfile cannot encode mp3")
    audio = tone(channels, seconds=1.0, rate=44100)
    path = tmp_path / "song.mp3"
    write_in_blocks(exporter, path, audio, ExportOptions(bitrate_kbps=192), rate=44100)

    decoded, rate = read(path)
    assert rate == 44100 and decoded.shape[0] == channels
    assert abs(decoded.shape[1] - audio.shape[1]) <= 2000
    for channel in range(channels):
        assert best_aligned_correlation(audio[channel], decoded[channel]) > 0.98
    assert folder_entries(tmp_path) == ["song.mp3"]


def test_mp3_bitrate_follows_the_option(tmp_path: Path) -> None:
    if not exporters.soundfile_writes_mp3():
        pytest.skip("this libsndfile cannot encode mp3")
    audio = tone(2, seconds=2.0, rate=44100)
    sizes = {}
    for kbps in (96, 256):
        path = tmp_path / f"song{kbps}.mp3"
        write_in_blocks(Mp3Exporter(), path, audio, ExportOptions(bitrate_kbps=kbps), rate=44100)
        sizes[kbps] = path.stat().st_size * 8 / 2.0 / 1000
    assert 80 < sizes[96] < 115 and 230 < sizes[256] < 290, sizes


def test_lossy_quality_settings_map_bitrates_as_documented() -> None:
    assert round(320 - mp3_compression_level(192, 44100) * (320 - 32)) in (192, 193)
    assert int(320 - mp3_compression_level(192, 44100) * (320 - 32)) == 192
    assert mp3_compression_level(320, 44100) == 0.0 and mp3_compression_level(1000, 44100) == 0.0
    assert mp3_compression_level(8, 44100) == 1.0
    assert int(160 - mp3_compression_level(64, 22050) * (160 - 8)) == 64
    assert vorbis_compression_level(500) == 0.0 and vorbis_compression_level(10) == 1.0
    assert vorbis_compression_level(128) == pytest.approx(0.6)


def test_mp3_refuses_rates_and_layouts_it_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"mp3 does not support 96000 Hz"):
        Mp3Exporter().open(tmp_path / "a.mp3", 96000, 2, ExportOptions(), **NAMES)
    with pytest.raises(AudioError, match=r"1 or 2 channels, not 6"):
        Mp3Exporter().open(tmp_path / "a.mp3", 44100, 6, ExportOptions(), **NAMES)
    with pytest.raises(AudioError, match=r"bitrate must be a positive"):
        OggExporter().open(tmp_path / "a.ogg", 44100, 2, ExportOptions(bitrate_kbps=0), **NAMES)
    assert folder_entries(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Peaks


def loud_sine(channels: int = 1) -> np.ndarray:
    return tone(channels, seconds=0.3, amplitude=1.5)


def test_clip_clips_a_loud_sine_in_16_bit_wav_instead_of_wrapping(tmp_path: Path) -> None:
    audio = loud_sine()
    path = tmp_path / "loud.wav"
    write_in_blocks(WavExporter(), path, audio, ExportOptions(bit_depth="16", peak="clip"))

    decoded = read(path)[0][0]
    original = audio[0]
    assert decoded.max() == pytest.approx(1.0, abs=1e-4) and decoded.min() == pytest.approx(-1.0, abs=1e-4)
    # Wrapping would turn +1.5 into a large negative value: every sample keeps its sign.
    above = original > 1.0
    below = original < -1.0
    assert above.any() and below.any()
    assert (decoded[above] > 0.999).all() and (decoded[below] < -0.999).all()
    inside = np.abs(original) <= 1.0
    np.testing.assert_allclose(decoded[inside], original[inside], atol=1e-4)


@pytest.mark.parametrize("exporter", [WavExporter(), FlacExporter()])
def test_clip_applies_to_integer_formats(tmp_path: Path, exporter: object) -> None:
    path = tmp_path / f"loud.{exporter.extension}"  # type: ignore[attr-defined]
    write_in_blocks(exporter, path, loud_sine(2), ExportOptions(bit_depth="24", peak="clip"))
    assert np.abs(read(path)[0]).max() <= 1.0


def test_clip_keeps_peaks_in_float_wav_which_can_hold_them(tmp_path: Path) -> None:
    audio = loud_sine(2)
    path = tmp_path / "loud.wav"
    write_in_blocks(WavExporter(), path, audio, ExportOptions(bit_depth="float", peak="clip"))
    np.testing.assert_array_equal(read(path)[0], audio)


@pytest.mark.parametrize("peak", ["clip", "normalize"])
def test_writers_leave_levels_to_core_whatever_the_peak_option(tmp_path: Path, peak: str) -> None:
    """Core scales or clips before a block arrives; a writer that can store the samples stores them as given."""
    audio = loud_sine(2)
    path = tmp_path / "loud.wav"
    write_in_blocks(WavExporter(), path, audio, ExportOptions(bit_depth="float", peak=peak))
    np.testing.assert_array_equal(read(path)[0], audio)
    assert folder_entries(tmp_path) == ["loud.wav"]


def test_writers_say_whether_they_keep_peaks(tmp_path: Path) -> None:
    float_wav = WavExporter().open(tmp_path / "a.wav", RATE, 2, ExportOptions(bit_depth="float"), **NAMES)
    pcm_wav = WavExporter().open(tmp_path / "b.wav", RATE, 2, ExportOptions(bit_depth="24"), **NAMES)
    npz = NpzExporter().open(tmp_path / "c.npz", RATE, 2, DEFAULT_OPTIONS, song="c", stem=None, stems=STEMS)
    assert (float_wav.keeps_peaks, pcm_wav.keeps_peaks, npz.keeps_peaks) == (True, False, True)
    for writer in (float_wav, pcm_wav, npz):
        writer.abort()
    assert folder_entries(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Atomicity and bad input


@pytest.mark.parametrize("name", ["wav", "flac", "ogg", "mp3"])
def test_abort_leaves_neither_the_file_nor_temporary_files(tmp_path: Path, name: str) -> None:
    exporter = plugin_manager().registry("exporters").get(name)
    writer = exporter.open(tmp_path / f"song.{name}", 44100, 2, ExportOptions(), **NAMES)
    audio = tone(2, rate=44100)
    writer.write(audio[:, :BLOCK])
    writer.write(audio[:, BLOCK : 2 * BLOCK])
    assert not (tmp_path / f"song.{name}").exists(), "the file must not appear before close()"
    writer.abort()
    writer.abort()
    assert folder_entries(tmp_path) == []
    with pytest.raises(ValueError, match="aborted"):
        writer.write(audio[:, :BLOCK])


def test_an_exception_inside_the_with_block_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "song.wav"
    audio = tone(2)
    with pytest.raises(KeyboardInterrupt):
        with WavExporter().open(path, RATE, 2, ExportOptions(), **NAMES) as writer:
            writer.write(audio[:, :BLOCK])
            raise KeyboardInterrupt
    assert folder_entries(tmp_path) == []


def test_the_with_block_closes_and_an_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "song.wav"
    path.write_bytes(b"old contents")
    audio = tone(1)
    with WavExporter().open(path, RATE, 1, ExportOptions(bit_depth="float"), **NAMES) as writer:
        writer.write(audio)
        assert path.read_bytes() == b"old contents"
    np.testing.assert_array_equal(read(path)[0], audio)
    writer.close()  # closing twice is harmless
    writer.abort()  # and aborting after close never takes the finished file back
    assert folder_entries(tmp_path) == ["song.wav"]


def test_a_failure_while_encoding_removes_the_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "song.wav"
    writer = WavExporter().open(path, RATE, 2, ExportOptions(), **NAMES)
    audio = tone(2)
    writer.write(audio[:, :BLOCK])

    def disk_full(self: object, block: np.ndarray) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exporters._SoundfileEncoder, "write", disk_full)
    with pytest.raises(AudioError, match=r"cannot write '.*song.wav': No space left on device"):
        writer.write(audio[:, BLOCK:])
    assert folder_entries(tmp_path) == []


def test_a_missing_or_unusable_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(AudioError, match=rf"the folder '{missing}' does not exist"):
        WavExporter().open(missing / "song.wav", RATE, 2, ExportOptions(), **NAMES)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(AudioError, match=rf"'{not_a_folder}' is not a folder"):
        FlacExporter().open(not_a_folder / "song.flac", RATE, 2, ExportOptions(), **NAMES)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(AudioError, match=rf"the folder '{folder}' is not writable"):
            WavExporter().open(folder / "song.wav", RATE, 2, ExportOptions(), **NAMES)
    finally:
        folder.chmod(0o755)


def test_a_folder_that_refuses_the_temporary_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a read-only or full file system does, even where the access check passes (root)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(exporters, "_SoundfileEncoder", refuse)
    with pytest.raises(AudioError, match=rf"Permission denied; check that the folder '{tmp_path}' is writable"):
        WavExporter().open(tmp_path / "song.wav", RATE, 2, ExportOptions(), **NAMES)
    assert folder_entries(tmp_path) == []


def test_blocks_of_the_wrong_shape_or_with_nan_are_refused(tmp_path: Path) -> None:
    writer = WavExporter().open(tmp_path / "song.wav", RATE, 2, ExportOptions(), **NAMES)
    with pytest.raises(ValueError, match=r"\(2, samples\)"):
        writer.write(np.zeros((1, 100), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(2, samples\)"):
        writer.write(np.zeros(100, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        writer.write(np.full((2, 10), np.nan, dtype=np.float32))
    writer.write(np.zeros((2, 0), dtype=np.float32))
    writer.abort()
    assert folder_entries(tmp_path) == []


def test_writers_satisfy_the_stem_writer_contract(tmp_path: Path) -> None:
    writer = OggExporter().open(tmp_path / "a.ogg", RATE, 1, ExportOptions(), **NAMES)
    assert isinstance(writer, StreamingStemWriter)
    for method in ("write", "close", "abort"):
        assert callable(getattr(writer, method))
    writer.abort()


# --------------------------------------------------------------------------------------------
# npz: one archive per song


def open_npz(path: Path, channels: int = 2, rate: int = RATE) -> NpzSongWriter:
    return NpzExporter().open(path, rate, channels, DEFAULT_OPTIONS, song=path.stem, stem=None, stems=STEMS)


def test_npz_is_registered_as_a_per_song_format() -> None:
    exporter = plugin_manager().registry("exporters").get("npz")
    assert (exporter.name, exporter.extension, exporter.per_song) == ("npz", "npz", True)
    assert not WavExporter().per_song


@pytest.mark.parametrize("channels", [1, 2])
def test_npz_holds_every_stem_and_the_sample_rate(tmp_path: Path, channels: int) -> None:
    vocals = loud_sine(channels)
    rest = tone(channels, seconds=0.3, amplitude=0.25)
    path = tmp_path / "My Song.npz"
    with open_npz(path, channels) as writer:
        for start in range(0, vocals.shape[1], BLOCK):
            writer.write_stems({"vocals": vocals[:, start : start + BLOCK], "rest": rest[:, start : start + BLOCK]})
        assert "My Song.npz" not in folder_entries(tmp_path), "the archive must not appear before close()"
    assert folder_entries(tmp_path) == ["My Song.npz"]
    with np.load(path) as archive:
        assert sorted(archive.files) == ["rest", "sample_rate", "vocals"]
        assert int(archive["sample_rate"]) == RATE
        assert archive["vocals"].dtype == np.float32 and archive["vocals"].shape == (channels, vocals.shape[1])
        np.testing.assert_array_equal(archive["vocals"], vocals)  # beyond full scale, kept as it is
        np.testing.assert_array_equal(archive["rest"], rest)


def test_an_empty_song_gives_empty_stems(tmp_path: Path) -> None:
    path = tmp_path / "silence.npz"
    open_npz(path).close()
    with np.load(path) as archive:
        assert archive["vocals"].shape == (2, 0) and archive["rest"].shape == (2, 0)


def test_npz_abort_leaves_neither_the_archive_nor_scratch_files(tmp_path: Path) -> None:
    writer = open_npz(tmp_path / "song.npz")
    audio = tone(2)
    writer.write_stems({"vocals": audio[:, :BLOCK], "rest": audio[:, :BLOCK]})
    assert folder_entries(tmp_path), "the stems wait in scratch files beside the archive"
    writer.abort()
    writer.abort()
    assert folder_entries(tmp_path) == []
    with pytest.raises(ValueError, match="aborted"):
        writer.write_stems({"vocals": audio[:, :BLOCK], "rest": audio[:, :BLOCK]})


def test_npz_replaces_an_existing_archive_whole(tmp_path: Path) -> None:
    path = tmp_path / "song.npz"
    path.write_bytes(b"old contents")
    audio = tone(1)
    with open_npz(path, channels=1) as writer:
        writer.write_stems({"vocals": audio, "rest": -audio})
        assert path.read_bytes() == b"old contents"
    with np.load(path) as archive:
        np.testing.assert_array_equal(archive["rest"], -audio)


def test_npz_refuses_missing_stems_or_stems_of_different_lengths(tmp_path: Path) -> None:
    writer = open_npz(tmp_path / "song.npz")
    audio = tone(2)
    with pytest.raises(ValueError, match="stems vocals, rest"):
        writer.write_stems({"vocals": audio})
    with pytest.raises(ValueError, match="one length"):
        writer.write_stems({"vocals": audio, "rest": audio[:, :10]})
    writer.abort()
    assert folder_entries(tmp_path) == []


def test_npz_refuses_a_stem_that_would_hide_the_sample_rate(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="stem named 'sample_rate'"):
        NpzExporter().open(tmp_path / "s.npz", RATE, 2, DEFAULT_OPTIONS, song="s", stem=None,
                           stems=("sample_rate", "rest"))
    assert folder_entries(tmp_path) == []


def test_a_full_disk_while_writing_npz_removes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = open_npz(tmp_path / "song.npz")
    audio = tone(2)

    def disk_full(self: object, block: np.ndarray) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exporters._ScratchFile, "append", disk_full)
    with pytest.raises(AudioError, match=r"cannot write '.*song.npz': No space left on device"):
        writer.write_stems({"vocals": audio, "rest": audio})
    assert folder_entries(tmp_path) == []
