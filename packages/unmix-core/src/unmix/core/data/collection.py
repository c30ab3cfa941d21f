"""Finding a collection's songs through the dataset plugins, and splitting them as the seed did.

Finding songs
-------------
A dataset plugin (`register_datasets`) knows one folder layout and turns a folder into `Track`s.
`find_tracks(folder, target, dataset)` asks one plugin by name, or with `dataset="auto"` asks every
registered plugin and combines what they find:

- plugins run in order of their `priority` attribute (lower first, 100 when absent), then by name;
- a track is kept unless an earlier plugin already found a track with the same collection and
  song name, or one that uses any of the same files (so a folder is never counted twice);
- songs a plugin recognised but had to leave out (a `vocals_x.wav` without its `rest_x.wav`, for
  example) are reported by `scan_tracks` as `SkippedSong`s, unless another plugin found a track
  for that folder or file.

The result is sorted by (collection, name). Core never imports a dataset plugin: the layouts
shipped with unmix live in unmix-sources and are found through the plugin manager.

Splits
------
As the seed's DataLoader (docs/original-system.md §4.3): songs ordered by the md5 of their name (the song
folder's name); test = the last `test_data_count`; `song_limit` (0 all, <= 1 a fraction, > 1 a
count) applied to the rest; validation = the first `int(len * validation_ratio)` of those;
training = the remainder. The functions only need items with a `.name` (ties are broken by
`.collection` when present), so raw `Track`s and cached songs split identically.

`collection.folders: [{path, ratio}]` mixes several datasets through a mixer plugin
(`register_mixers`, "ratio" by default, shipped in unmix-sources); see `split_collection`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from unmix.core.data.tracks import Track
from unmix.core.errors import UnmixError

__all__ = [
    "Dataset",
    "DatasetScan",
    "DatasetShare",
    "Mixer",
    "SkippedSong",
    "Split",
    "find_tracks",
    "infer_target",
    "order_songs",
    "printable",
    "scan_tracks",
    "song_key",
    "song_limit_count",
    "split_collection",
    "split_ordered",
    "split_songs",
]

T = TypeVar("T")
AUTO = "auto"
DEFAULT_PRIORITY = 100


@attrs.frozen
class SkippedSong:
    """A song (folder or file) that cannot be used, and why, in words a user can act on."""

    path: Path
    reason: str

    def describe(self) -> str:
        return f"{printable(str(self.path))}: {printable(self.reason)}"


def printable(text: str) -> str:
    """`text` with control characters escaped (a newline as \\n), so that a song whose file or folder
    name holds one is still reported on one line."""
    return "".join(character if character.isprintable() or character == " " else repr(character)[1:-1]
                   for character in text)


@attrs.frozen
class DatasetScan:
    """What one dataset plugin found in a folder: usable tracks and songs it had to leave out."""

    tracks: tuple[Track, ...] = ()
    skipped: tuple[SkippedSong, ...] = ()


@runtime_checkable
class Dataset(Protocol):
    """What `register_datasets` registers: a folder layout.

    `find_tracks` searches `folder` recursively and returns a `Track` per song for the instrument
    `target`. Optional extras core uses when present: `scan(folder, target) -> DatasetScan` (to
    report incomplete songs) and `priority: int` (order under "auto", lower first).

    Minimal example::

        class OneFolderPerSong:
            name = "my-layout"

            def find_tracks(self, folder, target):
                return [Track(name=d.name, collection=folder.name, folder=d,
                              target=(StemFile(d / f"{target}.wav"),), rest=(StemFile(d / "rest.wav"),))
                        for d in sorted(folder.iterdir()) if (d / f"{target}.wav").is_file()]

        @hookimpl
        def register_datasets(register):
            register("my-layout", OneFolderPerSong())
    """

    name: str

    def find_tracks(self, folder: Path, target: str) -> list[Track]: ...


@attrs.frozen
class Split:
    """Songs for training, validation and test, plus notes worth telling the user (may be empty)."""

    training: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    validation: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    test: tuple[Any, ...] = attrs.field(default=(), converter=tuple)
    messages: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __len__(self) -> int:
        return len(self.training) + len(self.validation) + len(self.test)


@attrs.frozen
class DatasetShare:
    """One dataset of a mix: its songs, its ratio, and a label (its folder) for messages."""

    label: str
    items: tuple[Any, ...] = attrs.field(converter=tuple)
    ratio: float = 1.0


class Mixer(Protocol):
    """What `register_mixers` registers: combines the songs of several datasets into one split."""

    name: str

    def mix(
        self,
        shares: Sequence[DatasetShare],
        *,
        song_limit: float = 0,
        validation_ratio: float = 0.2,
        test_data_count: int = 0,
    ) -> Split: ...


# --------------------------------------------------------------------------------------------
# Finding tracks


def scan_tracks(folder: str | Path, target: str, dataset: str = AUTO) -> DatasetScan:
    """Tracks and skipped songs under `folder` for instrument `target`, by one layout or all ("auto")."""
    from unmix.core.plugins import plugin_manager

    folder = Path(folder)
    if not folder.exists():
        raise UnmixError(f"the collection folder '{folder}' does not exist; check the path")
    if not folder.is_dir():
        raise UnmixError(f"the collection path '{folder}' is not a folder; give the folder that holds the songs")
    if not target or not str(target).strip():
        raise UnmixError("no target instrument given; set collection.target (e.g. \"vocals\")")

    registry = plugin_manager().registry("datasets")
    if str(dataset).lower() == AUTO:
        datasets = _each_layout_once(registry)
        if not datasets:
            raise UnmixError(
                "no dataset layout is installed, so no songs can be found; install unmix-sources "
                "(pip install unmix-sources) or a dataset plugin"
            )
        datasets.sort(key=lambda d: (getattr(d, "priority", DEFAULT_PRIORITY), str(getattr(d, "name", ""))))
    else:
        datasets = [registry.get(dataset)]

    tracks: list[Track] = []
    skipped: list[SkippedSong] = []
    keys: set[tuple[str, str]] = set()
    claimed: set[Path] = set()
    for layout in datasets:
        scan = _scan_one(layout, folder, str(target))
        for track in scan.tracks:
            files = {stem.path for stem in (*track.target, *track.rest)}
            if song_key(track) in keys or files & claimed:
                continue
            keys.add(song_key(track))
            claimed |= files
            if all(stem.stream is None for stem in (*track.target, *track.rest)):
                claimed.add(track.folder)  # a song folder; a multi-stream file is a song of its own
            tracks.append(track)
        skipped.extend(scan.skipped)
    # A layout that could not use a folder does not matter when another one could.
    seen: set[Path] = set()
    reported = []
    for song in skipped:
        if song.path in claimed or song.path in seen:
            continue
        seen.add(song.path)
        reported.append(song)
    tracks.sort(key=song_key)
    reported.sort(key=lambda s: str(s.path))
    return DatasetScan(tracks=tuple(tracks), skipped=tuple(reported))


def _each_layout_once(registry: Any) -> list:
    """The registered layouts, each once: a layout registered under an old name too is one layout."""
    layouts: list = []
    for registration in registry:
        if not any(registration.thing is layout for layout in layouts):
            layouts.append(registration.thing)
    return layouts


def _scan_one(layout: Any, folder: Path, target: str) -> DatasetScan:
    scan = getattr(layout, "scan", None)
    if callable(scan):
        result = scan(folder, target)
        return result if isinstance(result, DatasetScan) else DatasetScan(tuple(result))
    return DatasetScan(tracks=tuple(layout.find_tracks(folder, target)))


def find_tracks(folder: str | Path, target: str, dataset: str = AUTO) -> list[Track]:
    """The songs under `folder` (recursively) for instrument `target`, sorted by (collection, name).

    `dataset` is a dataset plugin's name or "auto" (every plugin, combined as the module explains).
    Songs that had to be left out are not returned; `scan_tracks` reports them.
    """
    return list(scan_tracks(folder, target, dataset).tracks)


def infer_target(folder: str | Path, dataset: str = AUTO, default: str = "vocals") -> str:
    """The instrument a collection's file names designate, for users who did not name one.

    Layouts that can tell (a dataset plugin's optional `targets(folder) -> {name: songs}`, e.g. the
    unmixio layout's `guitar_<song>.wav` beside `rest_<song>.wav`) are asked; layouts whose songs hold
    every instrument (stems, MUSDB18) designate none, so `default` is used when no layout names one.
    One name found is the target; several are ambiguous because guessing would silently train on
    the wrong songs, so the error lists them with their song counts.
    """
    from unmix.core.plugins import plugin_manager

    folder = Path(folder)
    if not folder.is_dir():
        return default  # scan_tracks reports the missing folder in words
    registry = plugin_manager().registry("datasets")
    if str(dataset).lower() == AUTO:
        layouts = _each_layout_once(registry)
    else:
        layouts = [registry.get(dataset)]
    found: dict[str, int] = {}
    for layout in layouts:
        targets = getattr(layout, "targets", None)
        if callable(targets):
            for name, songs in targets(folder).items():
                found[name] = found.get(name, 0) + int(songs)
    if not found:
        return default
    if len(found) == 1:
        return next(iter(found))
    listed = ", ".join(f"{name} ({songs} song{'s' if songs != 1 else ''})"
                       for name, songs in sorted(found.items(), key=lambda item: (-item[1], item[0])))
    raise UnmixError(f"'{folder}' holds stems for several instruments, found targets {listed}: pass --target "
                     "(or set collection.target) to choose one")


# --------------------------------------------------------------------------------------------
# Splits


def song_key(item: Any) -> tuple[str, str]:
    """(collection, name): what identifies a song in a collection and in the cache."""
    return (str(getattr(item, "collection", "")), str(item.name))


def _md5(name: str) -> str:
    return hashlib.md5(name.encode("utf-8")).hexdigest()


def order_songs(items: Iterable[T]) -> list[T]:
    """The seed's deterministic pseudo-random order: by md5 of the song name (then collection, name)."""
    return sorted(items, key=lambda item: (_md5(str(item.name)), str(getattr(item, "collection", "")),
                                           str(item.name)))


def song_limit_count(available: int, song_limit: float) -> int:
    """How many of `available` songs a song_limit keeps: 0 all, <= 1 a fraction, > 1 a count."""
    if song_limit < 0:
        raise ValueError(f"song_limit must be >= 0, got {song_limit!r}")
    if song_limit == 0:
        return available
    if song_limit <= 1:
        return int(available * song_limit)
    return min(available, int(song_limit))


def split_ordered(
    ordered: Sequence[T], *, test_count: int = 0, keep: int | None = None, validation_ratio: float = 0.2
) -> Split:
    """Split songs already in md5 order: test = last `test_count`, then the first `keep` of the rest
    (None: all), validation = the first int(kept * validation_ratio), training = the remainder."""
    if test_count < 0:
        raise ValueError(f"test_count must be >= 0, got {test_count!r}")
    if not 0 <= validation_ratio < 1:
        raise ValueError(f"validation_ratio must be in [0, 1), got {validation_ratio!r}")
    ordered = list(ordered)
    test_count = min(test_count, len(ordered))
    test = ordered[len(ordered) - test_count:]
    pool = ordered[:len(ordered) - test_count]
    if keep is not None:
        pool = pool[:max(0, keep)]
    validation_count = int(len(pool) * validation_ratio)
    return Split(training=pool[validation_count:], validation=pool[:validation_count], test=test)


def split_songs(
    items: Iterable[T], *, test_data_count: int = 0, song_limit: float = 0, validation_ratio: float = 0.2
) -> Split:
    """The seed's split of one dataset (see the module docs); works on anything with a `.name`."""
    ordered = order_songs(items)
    test_count = min(int(test_data_count), len(ordered))
    keep = song_limit_count(len(ordered) - test_count, song_limit)
    split = split_ordered(ordered, test_count=test_count, keep=keep, validation_ratio=validation_ratio)
    messages = []
    if ordered and test_count == len(ordered):
        messages.append(f"test_data_count {test_data_count} takes all {len(ordered)} songs; none are left "
                        "for training: lower collection.test_data_count")
    elif ordered and not split.training:
        messages.append(f"no training songs: {len(ordered)} songs, test_data_count {test_data_count}, "
                        f"song_limit {song_limit}, validation_ratio {validation_ratio}")
    return attrs.evolve(split, messages=messages)


def mix_songs(
    shares: Sequence[DatasetShare],
    *,
    song_limit: float = 0,
    validation_ratio: float = 0.2,
    test_data_count: int = 0,
    mixer: str = "ratio",
) -> Split:
    """Mix several datasets with a mixer plugin (the "ratio" mixer ships with unmix-sources)."""
    from unmix.core.plugins import plugin_manager

    return plugin_manager().get("mixers", mixer).mix(
        shares, song_limit=song_limit, validation_ratio=validation_ratio, test_data_count=test_data_count
    )


def split_collection(
    collection: Any, songs_for: Callable[[Path], Sequence[T]], *, mixer: str = "ratio"
) -> Split:
    """The split a configuration's `collection` section asks for.

    `songs_for(folder)` lists a folder's songs: `lambda f: find_tracks(f, c.target, c.dataset)` for
    raw audio, or `unmix.core.data.cache.open_cache` for a generated cache. With `collection.folders`
    the datasets are mixed by ratio (each folder split separately); otherwise `collection.folder`
    is split as the seed did.
    """
    options = {
        "song_limit": float(collection.song_limit),
        "validation_ratio": float(collection.validation_ratio),
        "test_data_count": int(collection.test_data_count),
    }
    folders = list(getattr(collection, "folders", None) or [])
    if folders:
        shares = [DatasetShare(label=str(f.path), items=tuple(songs_for(Path(f.path))), ratio=float(f.ratio))
                  for f in folders]
        return mix_songs(shares, mixer=mixer, **options)
    return split_songs(songs_for(Path(collection.folder)), **options)
