"""Splits as the seed's DataLoader, the ratio mixer, and how "auto" combines dataset plugins."""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path

import attrs
import pytest

from unmix.core import plugins
from unmix.core.config.schema import Collection, CollectionFolder
from unmix.core.data.collection import (
    DatasetScan,
    DatasetShare,
    SkippedSong,
    Split,
    find_tracks,
    infer_target,
    mix_songs,
    order_songs,
    printable,
    scan_tracks,
    song_limit_count,
    split_collection,
    split_songs,
)
from unmix.core.data.tracks import StemFile, Track
from unmix.core.errors import ConfigurationError, UnmixError
from unmix.core.hookspecs import hookimpl
from unmix.sources.mixers import RatioMixer


@attrs.frozen
class Song:
    name: str
    collection: str = "c"


def songs(count: int, prefix: str = "song", collection: str = "c") -> list[Song]:
    return [Song(f"{prefix}{index:03d}", collection) for index in range(count)]


def md5(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def names(items: tuple[Song, ...] | list[Song]) -> list[str]:
    return [item.name for item in items]


def test_songs_are_ordered_by_the_md5_of_their_name() -> None:
    items = songs(30)
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)

    ordered = order_songs(shuffled)

    assert names(ordered) == sorted(names(items), key=md5)
    assert order_songs(items) == ordered


def test_test_songs_are_the_last_and_validation_the_first_of_the_rest() -> None:
    ordered = names(order_songs(songs(20)))

    split = split_songs(songs(20), test_data_count=3, validation_ratio=0.2)

    assert names(split.test) == ordered[17:]
    assert names(split.validation) == ordered[:3]  # int(17 * 0.2)
    assert names(split.training) == ordered[3:17]
    assert split.messages == ()


@pytest.mark.parametrize(
    ("song_limit", "kept", "validation"),
    [(0, 17, 3), (0.5, 8, 1), (1, 17, 3), (10, 10, 2), (10.0, 10, 2), (2, 2, 0), (100, 17, 3)],
)
def test_song_limit_is_all_a_fraction_or_a_count(song_limit: float, kept: int, validation: int) -> None:
    ordered = names(order_songs(songs(20)))

    split = split_songs(songs(20), test_data_count=3, song_limit=song_limit, validation_ratio=0.2)

    assert names(split.test) == ordered[17:]  # the test set does not depend on song_limit
    assert len(split.validation) == validation
    assert len(split.validation) + len(split.training) == kept
    assert names(split.validation) + names(split.training) == ordered[:kept]


def test_song_limit_count() -> None:
    assert [song_limit_count(10, limit) for limit in (0, 0.25, 1, 3, 50)] == [10, 2, 10, 3, 10]
    with pytest.raises(ValueError):
        song_limit_count(10, -1)


def test_more_test_songs_than_songs_leaves_nothing_to_train_on_and_says_so() -> None:
    split = split_songs(songs(4), test_data_count=9)

    assert len(split.test) == 4 and not split.training and not split.validation
    assert "test_data_count 9 takes all 4 songs" in split.messages[0]


def test_split_is_generic_over_tracks(tmp_path: Path) -> None:
    tracks = [Track(name=f"t{index}", collection="x", folder=tmp_path, target=(StemFile(tmp_path / "a.wav"),),
                    rest=(StemFile(tmp_path / "b.wav"),)) for index in range(5)]

    split = split_songs(tracks, test_data_count=1, validation_ratio=0.25)

    assert (len(split.training), len(split.validation), len(split.test)) == (3, 1, 1)
    assert isinstance(split, Split) and len(split) == 5


# --------------------------------------------------------------------------------------------
# Ratio mixer


def test_ratio_mix_is_limited_by_the_dataset_that_runs_out_first(caplog: pytest.LogCaptureFixture) -> None:
    big, small = songs(10, "big"), songs(2, "small")

    with caplog.at_level(logging.WARNING, logger="unmix.mixers"):
        split = RatioMixer().mix([DatasetShare("big", big, 3), DatasetShare("small", small, 1)],
                                 validation_ratio=0.0)

    chosen = names(split.training)
    assert sum(name.startswith("big") for name in chosen) == 6
    assert sum(name.startswith("small") for name in chosen) == 2
    assert names(split.training)[:6] == names(order_songs(big))[:6]  # the first of each in md5 order
    [message] = split.messages
    assert "dataset 'small' has only 2 songs for its ratio 1" in message
    assert "'big' gives 6 of 10" in message
    assert message in caplog.text


def test_ratio_mix_fixes_the_seeds_smallest_dataset_bug() -> None:
    # The seed took the total from the dataset with the fewest songs: 4/1 * 8 = 32, asking 24 of a
    # dataset of 10. The dataset that runs out first is the big one here: min(10/0.75, 8/0.25) = 13.3.
    split = RatioMixer().mix([DatasetShare("a", songs(10, "a"), 3), DatasetShare("b", songs(8, "b"), 1)],
                             validation_ratio=0.0)

    chosen = names(split.training)
    assert (sum(n.startswith("a") for n in chosen), sum(n.startswith("b") for n in chosen)) == (10, 3)
    assert "dataset 'a' has only 10 songs for its ratio 3" in split.messages[0]


def test_ratio_mix_song_limit_count_and_the_thesis_numbers() -> None:
    split = RatioMixer().mix([DatasetShare("a", songs(300, "a"), 3), DatasetShare("b", songs(100, "b"), 1)],
                             song_limit=175, validation_ratio=0.0)

    chosen = names(split.training)
    assert (sum(n.startswith("a") for n in chosen), sum(n.startswith("b") for n in chosen)) == (131, 43)
    assert split.messages == ()


def test_ratio_mix_says_when_a_dataset_has_fewer_songs_than_the_limit_asks() -> None:
    split = RatioMixer().mix([DatasetShare("a", songs(300, "a"), 1), DatasetShare("b", songs(20, "b"), 1)],
                             song_limit=100, validation_ratio=0.0)

    assert len(split.training) == 40
    [message] = split.messages
    assert "dataset 'b' has 20 songs" in message and "fewer than the 50" in message and "cut to 40" in message


def test_ratio_mix_fraction_limit_test_songs_and_separate_validation() -> None:
    a, b = songs(23, "a"), songs(13, "b")

    split = RatioMixer().mix([DatasetShare("a", a, 1), DatasetShare("b", b, 1)], song_limit=0.5,
                             validation_ratio=0.25, test_data_count=3)

    # pools 20 and 10 -> total min(40, 20) = 20, halved = 10: 5 + 5 songs, each split separately.
    assert names(split.test) == names(order_songs(a))[-3:] + names(order_songs(b))[-3:]
    assert names(split.validation) == names(order_songs(a))[:1] + names(order_songs(b))[:1]
    assert names(split.training) == names(order_songs(a))[1:5] + names(order_songs(b))[1:5]


def test_ratio_zero_leaves_a_dataset_out_and_bad_ratios_are_errors() -> None:
    split = RatioMixer().mix([DatasetShare("a", songs(4, "a"), 1), DatasetShare("b", songs(4, "b"), 0)],
                             validation_ratio=0.0)
    assert names(split.training) == names(order_songs(songs(4, "a")))
    with pytest.raises(ConfigurationError, match="every ratio is 0"):
        RatioMixer().mix([DatasetShare("a", songs(4), 0)])
    with pytest.raises(ConfigurationError, match="ratio of 'a' is -1"):
        RatioMixer().mix([DatasetShare("a", songs(4), -1)])


def test_split_collection_uses_folders_through_the_mixer_plugin() -> None:
    datasets = {"one": songs(10, "one"), "two": songs(2, "two")}
    collection = Collection(folders=[CollectionFolder(path="one", ratio=3), CollectionFolder(path="two", ratio=1)],
                            validation_ratio=0.0)

    split = split_collection(collection, lambda folder: datasets[str(folder)])

    assert len(split.training) == 8
    assert mix_songs([DatasetShare("x", songs(3), 1)], validation_ratio=0.0).training == tuple(order_songs(songs(3)))

    single = split_collection(Collection(folder="one", test_data_count=2), lambda folder: datasets[str(folder)])
    assert (len(single.training), len(single.validation), len(single.test)) == (7, 1, 2)


# --------------------------------------------------------------------------------------------
# "auto": every dataset plugin, combined


def _track(folder: Path, name: str, *files: str) -> Track:
    return Track(name=name, collection="c", folder=folder, target=(StemFile(folder / files[0]),),
                 rest=tuple(StemFile(folder / file) for file in files[1:]))


class FirstLayout:
    name = "first"
    priority = 1

    def scan(self, folder: Path, target: str) -> DatasetScan:
        return DatasetScan(tracks=(_track(folder / "a", "a", "t.wav", "r.wav"),),
                           skipped=(SkippedSong(folder / "b", "first cannot read b"),
                                    SkippedSong(folder / "z", "first cannot read z")))

    def find_tracks(self, folder: Path, target: str) -> list[Track]:
        return list(self.scan(folder, target).tracks)


class SecondLayout:
    """No scan(), no priority: only the Dataset protocol."""

    name = "second"

    def find_tracks(self, folder: Path, target: str) -> list[Track]:
        return [
            _track(folder / "a", "a-again", "t.wav", "other.wav"),  # same files as first's "a": dropped
            _track(folder / "b", "b", "t.wav", "r.wav"),
            _track(folder / "c", "a", "x.wav", "y.wav"),  # same (collection, name) as first's: dropped
        ]


class LayoutsPlugin:
    @hookimpl
    def register_datasets(self, register) -> None:
        register("second", SecondLayout())
        register("first", FirstLayout())


@pytest.fixture
def own_plugins(monkeypatch: pytest.MonkeyPatch) -> plugins.PluginManager:
    manager = plugins.PluginManager()
    manager.register(LayoutsPlugin(), "test")
    monkeypatch.setattr(plugins, "_manager", manager)
    return manager


def test_auto_runs_every_layout_by_priority_and_drops_songs_found_twice(
    own_plugins: plugins.PluginManager, tmp_path: Path
) -> None:
    scan = scan_tracks(tmp_path, "vocals")

    assert [(track.name, track.folder.name) for track in scan.tracks] == [("a", "a"), ("b", "b")]
    # "b" was found by the second layout, so the first one's complaint about it is not reported.
    assert [song.path.name for song in scan.skipped] == ["z"]
    assert [track.name for track in find_tracks(tmp_path, "vocals", "second")] == ["a", "a-again", "b"]


def seed_files(folder: Path, target: str, song: str) -> None:
    """Empty files are enough: inference reads names, never audio."""
    (folder / song).mkdir(parents=True)
    for role in (target, "rest"):
        (folder / song / f"{role}_{song}.wav").write_bytes(b"")


def test_the_target_is_inferred_from_file_names_or_listed_when_ambiguous(tmp_path: Path) -> None:
    for index in range(3):
        seed_files(tmp_path / "guitars", "guitar", f"song{index}")
    assert infer_target(tmp_path / "guitars") == "guitar"

    (tmp_path / "stems" / "song").mkdir(parents=True)
    for stem in ("vocals", "drums", "bass"):
        (tmp_path / "stems" / "song" / f"{stem}.wav").write_bytes(b"")
    assert infer_target(tmp_path / "stems") == "vocals"  # every stem could be the target: the default

    seed_files(tmp_path / "guitars", "piano", "p0")
    with pytest.raises(UnmixError, match=r"found targets guitar \(3 songs\), piano \(1 song\): pass --target"):
        infer_target(tmp_path / "guitars")


def test_names_with_control_characters_are_reported_on_one_line() -> None:
    assert printable("two\nlines\tand é") == "two\\nlines\\tand é"
