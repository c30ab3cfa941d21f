"""The batch source on real songs: in memory and memory-mapped from .npy files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import attrs
import numpy as np
import pytest

from unmix.core.config.schema import (
    Collection,
    Configuration,
    Epoch,
    Training,
    Transformation,
    TransformationOptions,
)
from unmix.core.data.batches import BatchSource
from unmix.core.data.tracks import SongAudio
from unmix.core.data.transforms import MaskTransform, TrainWindowPredictMask
from unmix.core.data.windows import song_frame_count, window_count, window_first_frame, window_spectrogram
from unmix.core.errors import UnmixError

RATE = 22050
HOP = 384
BINS = 769


def make_song(index: int, seconds: float, channels: int = 1) -> SongAudio:
    """A sine target (a different pitch per song) over noise."""
    samples = int(seconds * RATE)
    t = np.arange(samples) / RATE
    target = np.stack([0.5 * np.sin(2 * np.pi * (220 + 55 * index + 30 * c) * t) for c in range(channels)])
    rest = 0.2 * np.random.default_rng(index).standard_normal((channels, samples))
    return SongAudio(f"song{index}", "test", RATE, target.astype(np.float32), rest.astype(np.float32))


def settings(
    batch_size: int = 4, shuffle_songs: bool = False, shuffle_windows: bool = True, limit: int = 0,
    size: int = 64, step: int = 64, stereo: bool = False,
) -> Configuration:
    return Configuration(
        collection=Collection(sample_rate=RATE, stereo=stereo),
        transformation=Transformation(options=TransformationOptions(size=size, step=step, shuffle=shuffle_windows)),
        training=Training(batch_size=batch_size, limit_items_per_song=limit, epoch=Epoch(shuffle=shuffle_songs)),
    )


@pytest.fixture(scope="module")
def songs() -> list[SongAudio]:
    return [make_song(index, seconds) for index, seconds in enumerate([6.0, 4.5, 9.2])]


def windows_of(song: SongAudio, size: int = 64, step: int = 64) -> int:
    return window_count(song_frame_count(song.frames, HOP), size, step)


def test_shapes_and_length(songs) -> None:
    with BatchSource(songs, TrainWindowPredictMask(), settings(batch_size=4), workers=2) as source:
        items = sum(windows_of(song) for song in songs)
        assert source.item_count == items
        assert len(source) == items // 4
        assert source.batch_shapes == ((4, BINS, 64, 1), (4, BINS, 64, 1))
        batches = list(source)
    assert len(batches) == len(source)
    for inputs, targets in batches:
        assert inputs.shape == targets.shape == (4, BINS, 64, 1)
        assert inputs.dtype == targets.dtype == np.float32
        assert np.isfinite(inputs).all() and np.isfinite(targets).all()
        assert np.allclose(inputs.max(axis=(1, 2, 3)), 1.0)  # norm_max per window


def test_remainder_is_dropped_unless_asked(songs) -> None:
    items = sum(windows_of(song) for song in songs)
    assert items % 3, "pick a batch size that leaves a remainder"
    with BatchSource(songs, TrainWindowPredictMask(), settings(batch_size=3), drop_remainder=False) as source:
        batches = list(source)
        assert len(batches) == len(source) == math.ceil(items / 3)
        assert len(batches[-1][0]) == items % 3


def test_every_window_once_per_epoch_and_batches_hold_those_windows(songs) -> None:
    transform = TrainWindowPredictMask()
    with BatchSource(songs, transform, settings(batch_size=1), workers=2, shuffle_songs=True) as source:
        items = source.epoch_items(3)
        expected = {(s, w) for s, song in enumerate(songs) for w in range(windows_of(song))}
        assert len(items) == len(expected)
        assert {tuple(map(int, item)) for item in items} == expected
        batches = list(source.epoch(3))
    for (song_index, window_index), (inputs, targets) in zip(items, batches, strict=True):
        song = songs[song_index]
        first = window_first_frame(int(window_index), 64, 64)
        mix_window = window_spectrogram(song.target + song.rest, first, 64, 1536)
        target_window = window_spectrogram(song.target, first, 64, 1536)
        model_input, target = transform.training_pair(mix_window, target_window)
        np.testing.assert_allclose(inputs[0], model_input, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(targets[0], target, rtol=1e-5, atol=1e-7)


def test_same_seed_same_batches_whatever_the_workers(songs) -> None:
    def epoch(seed: int, workers: int, epoch: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        configuration = attrs.evolve(settings(), augmentation=attrs.evolve(Configuration().augmentation, enabled=True))
        with BatchSource(songs, TrainWindowPredictMask(), configuration, seed=seed, workers=workers) as source:
            return list(source.epoch(epoch))

    reference = epoch(seed=5, workers=0)
    for workers in (1, 3):
        for (inputs, targets), (same_inputs, same_targets) in zip(reference, epoch(5, workers), strict=True):
            np.testing.assert_array_equal(inputs, same_inputs)
            np.testing.assert_array_equal(targets, same_targets)
    different = epoch(seed=6, workers=2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(reference, different, strict=True))
    next_epoch = epoch(seed=5, workers=2, epoch=1)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(reference, next_epoch, strict=True))


def test_shuffling_follows_the_configuration(songs) -> None:
    def order(**options: bool) -> np.ndarray:
        with BatchSource(songs, TrainWindowPredictMask(), settings(**options), seed=1) as source:
            return source.epoch_items(0)

    plain = order(shuffle_windows=False, shuffle_songs=False)
    np.testing.assert_array_equal(plain[:, 0], np.sort(plain[:, 0]))
    assert list(plain[plain[:, 0] == 1, 1]) == list(range(windows_of(songs[1])))

    within = order(shuffle_windows=True, shuffle_songs=False)
    np.testing.assert_array_equal(within[:, 0], plain[:, 0])  # songs stay in order
    assert not np.array_equal(within[:, 1], plain[:, 1])  # windows do not

    everywhere = order(shuffle_windows=False, shuffle_songs=True)
    assert not np.array_equal(everywhere[:, 0], np.sort(everywhere[:, 0]))


def test_limit_items_per_song_keeps_the_middle_windows(songs) -> None:
    with BatchSource(songs, TrainWindowPredictMask(), settings(limit=4, shuffle_windows=False)) as source:
        items = source.epoch_items(0)
        assert source.item_count == 4 * len(songs)
        for song_index, song in enumerate(songs):
            count = windows_of(song)
            windows = items[items[:, 0] == song_index, 1]
            assert list(windows) == list(range(count // 2 - 2, count // 2 + 2))


def test_stereo_songs_and_the_mask_transform(songs) -> None:
    stereo = [make_song(index, 3.0, channels=2) for index in range(2)]
    configuration = settings(batch_size=3, size=25, step=1, stereo=True)
    transform = MaskTransform(size=25, step=1, normalizer="")
    with BatchSource(stereo, transform, configuration, workers=2) as source:
        assert source.batch_shapes == ((3, BINS, 25, 2), (3, BINS, 1, 2))
        assert source.item_count == sum(windows_of(song, 25, 1) for song in stereo)
        inputs, targets = next(iter(source))
    assert inputs.shape == (3, BINS, 25, 2) and targets.shape == (3, BINS, 1, 2)
    assert 0.0 <= targets.min() and targets.max() <= 1.0


@attrs.frozen
class NpySong:
    """A song stored as two .npy files and opened memory-mapped, as the training-data cache does."""

    folder: Path

    def load(self) -> SongAudio:
        return SongAudio(
            self.folder.name, "cache", RATE,
            np.load(self.folder / "target.npy", mmap_mode="r"),
            np.load(self.folder / "rest.npy", mmap_mode="r"),
        )


def test_memory_mapped_songs_give_the_same_batches(songs, tmp_path: Path) -> None:
    loaders = []
    for song in songs:
        folder = tmp_path / song.name
        folder.mkdir()
        np.save(folder / "target.npy", song.target)
        np.save(folder / "rest.npy", song.rest)
        loaders.append(NpySong(folder))
    with BatchSource(songs, TrainWindowPredictMask(), settings(), seed=2, workers=0) as in_memory, \
            BatchSource(loaders, TrainWindowPredictMask(), settings(), seed=2, workers=2, open_songs=1) as mapped:
        assert len(in_memory) == len(mapped)
        for (inputs, targets), (mapped_inputs, mapped_targets) in zip(in_memory, mapped, strict=True):
            np.testing.assert_array_equal(inputs, mapped_inputs)
            np.testing.assert_array_equal(targets, mapped_targets)


@attrs.define
class CountingSong:
    """A loader that knows its length, as cache entries do, and counts how often it is opened."""

    song: SongAudio
    frames: int
    channels: int
    sample_rate: int
    loads: int = 0

    def load(self) -> SongAudio:
        self.loads += 1
        return self.song


def test_loaders_are_opened_on_demand_and_only_a_few_stay_open(songs) -> None:
    loaders = [CountingSong(song, song.frames, song.channels, song.sample_rate) for song in songs]
    source = BatchSource(loaders, TrainWindowPredictMask(), settings(batch_size=2), workers=0, open_songs=1)
    assert [loader.loads for loader in loaders] == [0, 0, 0]  # the index needs no audio
    list(source.epoch(0))
    # Songs in order, one kept open: each song is opened once per epoch.
    assert [loader.loads for loader in loaders] == [1, 1, 1]


def test_random_access_matches_iteration(songs) -> None:
    with BatchSource(songs, TrainWindowPredictMask(), settings(), seed=4, workers=2) as source:
        iterated = list(source.epoch(2))
        for index in (0, len(source) - 1):
            inputs, targets = source.batch(2, index)
            np.testing.assert_array_equal(inputs, iterated[index][0])
        with pytest.raises(IndexError):
            source.batch(2, len(source))


def test_stopping_early_and_worker_errors(songs) -> None:
    with BatchSource(songs, TrainWindowPredictMask(), settings(), workers=2, prefetch=2) as source:
        iterator = iter(source)
        next(iterator)
        iterator.close()  # the pool winds down; nothing hangs
        assert len(list(source)) == len(source)  # the next epoch still works

    class Broken:
        def load(self) -> SongAudio:
            raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        BatchSource([Broken()], TrainWindowPredictMask(), settings())


def test_songs_that_do_not_match_the_configuration_are_user_errors(songs) -> None:
    with pytest.raises(UnmixError, match="collection.stereo"):
        BatchSource(songs, TrainWindowPredictMask(), settings(stereo=True))
    with pytest.raises(UnmixError, match="collection.sample_rate"):
        BatchSource(songs, TrainWindowPredictMask(), attrs.evolve(settings(), collection=Collection(sample_rate=44100)))
    with pytest.raises(UnmixError, match="no songs"):
        BatchSource([], TrainWindowPredictMask(), settings())


def test_validation_songs_with_fewer_windows_than_a_batch_still_validate(tmp_path: Path) -> None:
    from tests.training_fixtures import register_gain_model, write_configuration, write_seed_collection
    from unmix.core.config.loader import load_configuration
    from unmix.core.data.training_data import prepare_training_data

    register_gain_model()
    collection = write_seed_collection(tmp_path / "songs", songs=4, seconds=1.0)
    base = write_configuration(tmp_path / "tiny.jsonc", collection, "gain-mask", epochs=1)
    configuration = tmp_path / "one-validation-song.jsonc"
    configuration.write_text(json.dumps({"base": base.name, "collection": {"validation_ratio": 0.4},
                                         "training": {"batch_size": 12}}))

    data = prepare_training_data(load_configuration(configuration))

    windows = data.validation.item_count
    assert len(data.validation.songs) == 1 and 0 < windows < 12
    assert len(data.validation) == 1
    inputs, targets = next(iter(data.validation.epoch(0)))
    assert len(inputs) == len(targets) == windows
