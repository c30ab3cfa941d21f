"""The training-data cache: generate, skip what is done, survive bad input, read back memory-mapped."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import stempeg

from unmix.core.data.cache import (
    BLOCK_FRAMES,
    CachedSong,
    CacheSettings,
    default_cache_folder,
    ensure_cache,
    generate_cache,
    is_cache,
    load_stem,
    open_cache,
    open_songs,
)
from unmix.core.data.collection import find_tracks, split_songs
from unmix.core.data.tracks import StemFile
from unmix.core.errors import UnmixError


def tone(seconds: float, rate: int, frequency: float, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    """(frames, channels) sine; the second channel at half amplitude so that stereo is visible."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = amplitude * np.sin(2 * np.pi * frequency * t)
    return np.stack([wave * (1.0 if c == 0 else 0.5) for c in range(channels)], axis=1).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".wav", ".flac"):
        soundfile.write(path, samples, rate)
    else:  # mp3 and friends through a real ffmpeg
        wav = path.with_name(path.name + ".source.wav")
        soundfile.write(wav, samples, rate)
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), str(path)], check=True)
        wav.unlink()
    return path


def seed_song(root: Path, name: str, *, rate: int = 8000, seconds: float = 1.0, channels: int = 1,
              extension: str = ".wav", vocals_hz: float = 440.0, rest_hz: float = 220.0) -> Path:
    folder = root / name
    write(folder / f"vocals_{name}{extension}", tone(seconds, rate, vocals_hz, channels), rate)
    write(folder / f"rest_{name}{extension}", tone(seconds, rate, rest_hz, channels), rate)
    return folder


def mtimes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in sorted(folder.rglob("*"))
            if path.is_file()}


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def test_mono_cache_of_seed_songs_reads_back_memory_mapped(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    for name in ("one", "two"):
        seed_song(raw, name, rate=8000)

    report = generate_cache(raw, data, sample_rate=8000, channels=1, jobs=1)

    assert sorted(report.generated) == ["raw/one", "raw/two"] and report.reused == () and report.skipped == ()
    assert is_cache(data) and (data / "raw" / "one" / "target.npy").is_file()
    index = json.loads((data / "index.json").read_text())
    assert (index["sample_rate"], index["channels"], index["target"]) == (8000, 1, "vocals")
    entry = index["songs"]["raw/one"]
    assert entry["frames"] == 8000 and entry["checksum"].startswith("sha1:")
    assert entry["stems"]["target"] == [{"path": str((raw / "one" / "vocals_one.wav").resolve()), "stream": None}]

    songs = open_cache(data)
    assert [(s.collection, s.name) for s in songs] == [("raw", "one"), ("raw", "two")]
    audio = songs[0].load()
    assert isinstance(audio.target, np.memmap) and isinstance(audio.rest, np.memmap)
    assert audio.target.dtype == np.float32 and audio.target.shape == (1, 8000) and audio.sample_rate == 8000
    np.testing.assert_allclose(audio.target[0], tone(1, 8000, 440)[:, 0], atol=1e-4)
    np.testing.assert_allclose(audio.rest[0], tone(1, 8000, 220)[:, 0], atol=1e-4)
    assert report.songs == tuple(songs)


def test_stereo_44100_resampled_to_22050_keeps_a_1khz_tone(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    seed_song(raw, "song", rate=44100, seconds=1.0, channels=2, extension=".flac", vocals_hz=1000, rest_hz=300)

    generate_cache(raw, tmp_path / "data", sample_rate=22050, channels=2, jobs=1)

    [song] = open_cache(tmp_path / "data", sample_rate=22050, channels=2)
    audio = song.load()
    assert audio.target.shape == (2, 22050) and audio.rest.shape == (2, 22050)
    assert dominant_frequency(np.asarray(audio.target[0]), 22050) == pytest.approx(1000, abs=2)
    assert dominant_frequency(np.asarray(audio.rest[1]), 22050) == pytest.approx(300, abs=2)
    # The channels stay apart: the right one was written at half amplitude.
    peak = np.abs(audio.target).max(axis=1)
    assert peak[1] == pytest.approx(peak[0] / 2, rel=0.02)


def test_mono_cache_of_a_stereo_source_averages_the_channels(tmp_path: Path) -> None:
    seed_song(tmp_path / "raw", "song", rate=8000, channels=2)

    generate_cache(tmp_path / "raw", tmp_path / "data", sample_rate=8000, channels=1, jobs=1)

    [song] = open_cache(tmp_path / "data")
    np.testing.assert_allclose(song.load().target[0], tone(1, 8000, 440)[:, 0] * 0.75, atol=1e-4)


def test_stems_layout_sums_the_rest_files(tmp_path: Path) -> None:
    song = tmp_path / "raw" / "song"
    write(song / "vocals.wav", tone(0.5, 8000, 440), 8000)
    write(song / "drums.wav", tone(0.5, 8000, 100), 8000)
    write(song / "bass.wav", tone(0.5, 8000, 50), 8000)
    write(song / "mixture.wav", tone(0.5, 8000, 1234), 8000)

    generate_cache(tmp_path / "raw", tmp_path / "data", sample_rate=8000, jobs=1)

    [cached] = open_cache(tmp_path / "data")
    expected = tone(0.5, 8000, 100)[:, 0] + tone(0.5, 8000, 50)[:, 0]
    np.testing.assert_allclose(cached.load().rest[0], expected, atol=1e-4)


def test_the_musdb_example_stem_file_is_cached(tmp_path: Path) -> None:
    example = Path(stempeg.example_stem_path())
    (tmp_path / "musdb" / "test").mkdir(parents=True)
    shutil.copy(example, tmp_path / "musdb" / "test" / example.name)

    report = generate_cache(tmp_path / "musdb", tmp_path / "data", sample_rate=22050, channels=2, jobs=1)

    assert report.skipped == ()
    [song] = open_cache(tmp_path / "data")
    assert (song.collection, song.name) == ("test", "The Easton Ellises - Falcon 69")
    assert song.frames == pytest.approx(6.08 * 22050, rel=0.01)
    audio = song.load()
    assert audio.target.shape == audio.rest.shape == (2, song.frames)
    vocals, rate = load_stem(StemFile(tmp_path / "musdb" / "test" / example.name, 4), channels=2)
    assert rate == 44100 and vocals.shape[0] == 2
    assert np.abs(audio.target).max() == pytest.approx(np.abs(vocals).max(), rel=0.1)
    assert np.abs(audio.rest).max() > 0.01 and not np.allclose(audio.target, audio.rest)


def test_reading_a_stream_the_file_lacks_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "plain.wav", tone(0.2, 8000, 440), 8000)
    with pytest.raises(UnmixError, match=r"cannot read audio stream 4 of .*plain.wav.*no such audio stream"):
        load_stem(StemFile(path, 4))


def test_second_run_skips_everything_and_touches_nothing(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    for name in ("a", "b", "c"):
        seed_song(raw, name)
    generate_cache(raw, data, sample_rate=8000, jobs=1)
    before = mtimes(data)

    again = generate_cache(raw, data, sample_rate=8000, jobs=2)

    assert again.generated == () and sorted(again.reused) == ["raw/a", "raw/b", "raw/c"]
    assert mtimes(data) == before
    assert len(again.songs) == 3


def test_a_changed_or_damaged_song_is_generated_again(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    for name in ("a", "b", "c"):
        seed_song(raw, name)
    generate_cache(raw, data, sample_rate=8000, jobs=1)

    write(raw / "a" / "vocals_a.wav", tone(1.5, 8000, 880), 8000)  # edited source
    write(raw / "a" / "rest_a.wav", tone(1.5, 8000, 110), 8000)
    (data / "raw" / "b" / "rest.npy").unlink()  # lost file
    (data / "raw" / "c" / ".target.npy.0123.tmp").write_bytes(b"half")  # a killed run's leftover

    report = generate_cache(raw, data, sample_rate=8000, jobs=1)

    assert sorted(report.generated) == ["raw/a", "raw/b"] and report.reused == ("raw/c",)
    assert {s.name: s.frames for s in open_cache(data)} == {"a": 12000, "b": 8000, "c": 8000}
    assert not list(data.rglob("*.tmp"))


def test_parallel_jobs_give_the_same_cache(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for index in range(3):
        seed_song(raw, f"song{index}", seconds=0.5, vocals_hz=300 + 100 * index)

    serial = generate_cache(raw, tmp_path / "serial", sample_rate=8000, jobs=1)
    parallel = generate_cache(raw, tmp_path / "parallel", sample_rate=8000, jobs=2)

    assert sorted(serial.generated) == sorted(parallel.generated)
    for one, two in zip(open_cache(tmp_path / "serial"), open_cache(tmp_path / "parallel"), strict=True):
        np.testing.assert_array_equal(one.load().target, two.load().target)


def test_another_setting_in_the_same_folder_is_an_error(tmp_path: Path) -> None:
    seed_song(tmp_path / "raw", "song")
    generate_cache(tmp_path / "raw", tmp_path / "data", sample_rate=8000, jobs=1)

    with pytest.raises(UnmixError, match=r"holds 8000 Hz, mono, target 'vocals'; this run asks for 16000 Hz, mono"):
        generate_cache(tmp_path / "raw", tmp_path / "data", sample_rate=16000, jobs=1)
    with pytest.raises(UnmixError, match="channels 2 is asked for"):
        open_cache(tmp_path / "data", channels=2)


def test_stems_of_different_lengths_are_trimmed_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "raw" / "song"
    write(folder / "vocals_song.wav", tone(1.0, 8000, 440), 8000)
    write(folder / "rest_song.wav", tone(1.5, 8000, 220), 8000)

    report = generate_cache(tmp_path / "raw", tmp_path / "data", sample_rate=8000, jobs=1)

    [song] = report.songs
    assert song.frames == 8000
    [note] = report.notes
    assert "raw/song: stems differ in length" in note and "trimmed to the shortest, 1.00 s" in note


def test_stems_at_different_sample_rates_are_resampled(tmp_path: Path) -> None:
    folder = tmp_path / "raw" / "song"
    write(folder / "vocals_song.wav", tone(1.0, 16000, 440), 16000)
    write(folder / "rest_song.flac", tone(1.0, 11025, 220), 11025)

    report = generate_cache(tmp_path / "raw", tmp_path / "data", sample_rate=8000, jobs=1)

    [song] = report.songs
    assert song.frames == 8000
    assert "different sample rates (11025, 16000 Hz)" in report.notes[0]
    assert dominant_frequency(np.asarray(song.load().rest[0]), 8000) == pytest.approx(220, abs=2)


def test_bad_files_are_skipped_with_a_reason_and_the_rest_goes_on(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    seed_song(raw, "good")
    empty = seed_song(raw, "empty") / "vocals_empty.wav"
    empty.write_bytes(b"")
    text = seed_song(raw, "text") / "rest_text.wav"
    text.write_text("this is not audio\n" * 50)
    mp3 = seed_song(raw, "truncated", extension=".mp3") / "vocals_truncated.mp3"
    mp3.write_bytes(mp3.read_bytes()[:300])
    silent = raw / "silent"
    write(silent / "vocals_silent.wav", np.zeros((8000, 1), np.float32), 8000)
    write(silent / "rest_silent.wav", tone(1, 8000, 220), 8000)
    lonely = raw / "lonely"
    write(lonely / "vocals_lonely.wav", tone(1, 8000, 220), 8000)

    report = generate_cache(raw, tmp_path / "data", sample_rate=8000, jobs=2)

    assert [song.name for song in report.songs] == ["good"]
    reasons = {song.path.name: song.reason for song in report.skipped}
    assert set(reasons) == {"empty", "text", "truncated", "silent", "lonely"}
    assert "vocals_empty.wav" in reasons["empty"] and "empty" in reasons["empty"]
    assert "rest_text.wav" in reasons["text"]
    assert "vocals_truncated.mp3" in reasons["truncated"]
    assert "silent" in reasons["silent"]
    assert "no rest stem" in reasons["lonely"]
    assert all("\n" not in reason for reason in reasons.values())
    assert [s.name for s in open_cache(tmp_path / "data")] == ["good"]


def test_no_songs_or_an_unwritable_destination_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnmixError, match=r"no songs for target 'vocals' found in .*empty"):
        generate_cache(tmp_path / "empty", tmp_path / "data")
    assert not (tmp_path / "data").exists()

    seed_song(tmp_path / "raw", "song")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with pytest.raises(UnmixError, match="cannot write the cache to .*blocker/data.*writable destination"):
        generate_cache(tmp_path / "raw", blocker / "data", sample_rate=8000)
    with pytest.raises(UnmixError, match="is a file, not a folder"):
        generate_cache(tmp_path / "raw", blocker, sample_rate=8000)
    with pytest.raises(UnmixError, match="not an unmix cache"):
        open_cache(tmp_path / "raw")


def test_splits_of_cached_songs_match_splits_of_raw_tracks(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for index in range(6):
        seed_song(raw, f"song{index}", seconds=0.2)
    generate_cache(raw, tmp_path / "data", sample_rate=8000, jobs=1)

    options = {"test_data_count": 1, "validation_ratio": 0.25}
    cached = split_songs(open_cache(tmp_path / "data"), **options)
    tracks = split_songs(find_tracks(raw, "vocals"), **options)

    for part in ("training", "validation", "test"):
        assert [s.name for s in getattr(cached, part)] == [t.name for t in getattr(tracks, part)]
    assert all(isinstance(song, CachedSong) for song in cached.training)


def test_training_reads_a_raw_folder_cached_on_first_use(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    seed_song(raw, "song", seconds=0.2)

    first = ensure_cache(raw, tmp_path / "data", sample_rate=8000, jobs=1)
    again = open_songs(raw, cache_folder=tmp_path / "data", sample_rate=8000, jobs=1)
    from_cache = open_songs(tmp_path / "data", sample_rate=8000)
    hidden = open_songs(raw, sample_rate=8000, jobs=1)

    assert first == again == from_cache
    assert [song.name for song in hidden] == ["song"]
    assert hidden[0].folder.is_relative_to(raw / ".unmix-cache")
    settings = CacheSettings(sample_rate=8000, channels=1, target="vocals")
    assert default_cache_folder(raw, settings).name == "sample-rate=8000_channels=mono_target=vocals"
    # The hidden cache inside the raw folder is not mistaken for songs.
    assert [t.name for t in find_tracks(raw, "vocals")] == ["song"]

    (raw / "song" / "vocals_song.wav").write_bytes(b"")
    with pytest.raises(UnmixError, match="none of the 1 songs found"):
        ensure_cache(raw, tmp_path / "data", sample_rate=8000, jobs=1)


def test_a_second_writer_is_refused_and_write_errors_stop_the_run(tmp_path: Path) -> None:
    import fcntl

    raw, data = tmp_path / "raw", tmp_path / "data"
    seed_song(raw, "song", seconds=0.2)
    data.mkdir()
    with open(data / ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UnmixError, match="another `unmix generate` is writing to"):
            generate_cache(raw, data, sample_rate=8000, jobs=1)

    (data / "raw").write_text("a file where the song folder goes")
    with pytest.raises(UnmixError, match=r"cannot write to the cache folder .*raw/song"):
        generate_cache(raw, data, sample_rate=8000, jobs=1)
    assert json.loads((data / "index.json").read_text())["songs"] == {}


def test_trainings_sharing_a_raw_folder_wait_for_each_other(tmp_path):
    """ensure_cache queues behind another writer instead of failing (DDP ranks, two runs at once)."""
    import fcntl
    import threading

    from unmix.core.data.cache import LOCK_FILE, ensure_cache

    raw = tmp_path / "raw"
    song = raw / "song"
    song.mkdir(parents=True)
    rate = 8000
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    soundfile.write(song / "vocals_song.wav", tone, rate)
    soundfile.write(song / "rest_song.wav", 0.5 * tone, rate)
    cache = tmp_path / "cache"
    cache.mkdir()
    with open(cache / LOCK_FILE, "a") as other_writer:
        fcntl.flock(other_writer.fileno(), fcntl.LOCK_EX)
        result = {}
        waiting = threading.Thread(target=lambda: result.setdefault(
            "songs", ensure_cache(raw, cache, sample_rate=rate, channels=1, target="vocals", jobs=1)))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive()  # queued behind the other writer
    waiting.join(timeout=60)
    assert [s.name for s in result["songs"]] == ["song"]


def test_a_song_longer_than_one_block_is_cached_sample_exact_in_both_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = 3 * BLOCK_FRAMES + 1234  # several decode and write blocks, the last one partial
    vocals = rng.uniform(-0.5, 0.5, (frames, 2)).astype(np.float32)
    rest = rng.uniform(-0.5, 0.5, (frames, 2)).astype(np.float32)
    (tmp_path / "raw" / "song").mkdir(parents=True)
    soundfile.write(tmp_path / "raw" / "song" / "vocals_song.wav", vocals, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "raw" / "song" / "rest_song.wav", rest, 16000, subtype="FLOAT")

    (song,) = generate_cache(tmp_path / "raw", tmp_path / "data", sample_rate=16000, channels=2, jobs=1).songs

    audio = song.load()
    np.testing.assert_array_equal(audio.target, vocals.T)
    np.testing.assert_array_equal(audio.rest, rest.T)


def test_a_nan_sample_skips_the_song_naming_the_file_and_position(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    seed_song(raw, "good")
    bad = seed_song(raw, "bad")
    samples = tone(1, 8000, 440)
    samples[4321, 0] = np.nan
    soundfile.write(bad / "rest_bad.wav", samples, 8000, subtype="FLOAT")

    report = generate_cache(raw, tmp_path / "data", sample_rate=8000, jobs=1)

    assert [song.name for song in report.songs] == ["good"]
    (skipped,) = report.skipped
    assert skipped.path == bad and "rest_bad.wav" in skipped.reason
    assert "sample 4321 of channel 0 is NaN" in skipped.reason
    assert not list((tmp_path / "data").rglob("*.tmp")) and not (tmp_path / "data" / "raw" / "bad").exists()


def test_without_a_target_the_one_the_file_names_designate_is_cached(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write(raw / "x" / "piano_x.wav", tone(1, 8000, 440), 8000)
    write(raw / "x" / "rest_x.wav", tone(1, 8000, 220), 8000)

    report = generate_cache(raw, tmp_path / "data", sample_rate=8000, jobs=1)

    assert report.settings.target == "piano" and [song.name for song in report.songs] == ["x"]
    explicit = generate_cache(raw, tmp_path / "other", sample_rate=8000, target="vocals", jobs=1)
    assert not explicit.songs and "add 'vocals_<song>.<ext>' beside it" in explicit.skipped[0].reason


def test_training_on_a_raw_guitar_collection_without_a_target_trains_guitar(tmp_path: Path) -> None:
    from tests.training_fixtures import register_gain_model, write_configuration, write_seed_collection
    from unmix.core.config.loader import load_configuration
    from unmix.core.data.training_data import prepare_training_data

    register_gain_model()
    collection = write_seed_collection(tmp_path / "guitars", songs=4, seconds=1.0, target="guitar")
    configuration = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=1)

    data = prepare_training_data(load_configuration(configuration))

    assert len(data.training.songs) == 3
    assert all("target=guitar" in str(song.folder) for song in data.training.songs)
