"""Dataset layouts: how a folder of songs maps to tracks (target stem files vs the rest).

Three layouts ship with unmix; each searches its folder recursively (hidden folders skipped,
symbolic links followed once):

`unmixio` -- the layout of the original unmix.io project and of splitstrument, one folder per
    song holding `<target>_<song>.<ext>` and `rest_<song>.<ext>`; for the target "vocals" an
    `instrumental_<song>.<ext>` (the unmix.io data) is accepted as the rest too (`rest_` wins when
    both exist). For any other target "instrumental" would contain the target, so it is not used.
    Names match case-insensitively. When one folder holds several songs (`vocals_a.wav`,
    `rest_a.wav`, `vocals_b.wav`, ...), they are paired by `<song>` and named by it; a folder with
    one song is named after the folder, as the seed did. Its old name `seed` still works
    (`collection.dataset: "seed"`, `--dataset seed`): `LAYOUT_ALIASES` registers it too.
`stems` -- one file per stem (MUSDB18-HQ, most multitrack sets): the folder of a song holds
    `<target>.<ext>`; the rest is every other audio file in that folder, summed, except
    `mixture.*` / `mix.*` (the premixed song) and `*.stem.*` multitrack files.
`musdb-stem` -- MUSDB18's `.stem.mp4` (also `.stem.m4a`) files, one track per file: stream 0 is the
    mixture, then drums (1), bass (2), other (3), vocals (4); the target is its stream and the rest
    the other three stem streams (the mixture stream is not used: mix = target + rest).

When a folder holds the same stem in several formats (`vocals_x.wav`, `vocals_x.mp3`), the
lossless one is used (wav, flac, aiff, ... before lossy formats), then the first by name.

Song and collection names (the cache stores songs as `<collection>/<song>`): the song is the song
folder's name (for `musdb-stem`, the file name without `.stem.mp4`); the collection is the path of
the song's parent folder relative to the searched folder, or the searched folder's own name when
the songs lie directly in it (the seed used the song folder's parent name).

Only the unmixio layout names its target in its file names, so only it offers `targets(folder)`
(used by `unmix.core.data.collection.infer_target`): a folder of `guitar_x.wav` + `rest_x.wav` is a
guitar collection without a --target. Names may hold any character, newlines included.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import attrs

from unmix.core.data.collection import DatasetScan, SkippedSong
from unmix.core.data.tracks import StemFile, Track

__all__ = [
    "AUDIO_EXTENSIONS",
    "DATASETS",
    "MUSDB_STREAMS",
    "LAYOUT_ALIASES",
    "MusdbStemDataset",
    "StemsDataset",
    "UnmixioDataset",
]

# Lossless first: the order decides which file is used when a stem exists in several formats.
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".w64", ".rf64", ".wv", ".ape", ".caf", ".au", ".snd",
    ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp2", ".ac3", ".wma", ".mka", ".webm", ".mp4",
)  # fmt: skip
_EXTENSION_RANK = {extension: rank for rank, extension in enumerate(AUDIO_EXTENSIONS)}
_STEM_FILE_SUFFIXES = (".stem.mp4", ".stem.m4a")
# MUSDB18's stream order (after stream 0, the mixture).
MUSDB_STREAMS = {"drums": 1, "bass": 2, "other": 3, "vocals": 4}
_MIXTURE_NAMES = {"mixture", "mix"}


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in _EXTENSION_RANK and not path.name.startswith(".")


def _is_multistream(path: Path) -> bool:
    return path.name.lower().endswith(_STEM_FILE_SUFFIXES)


def _preferred(paths: list[Path]) -> Path:
    return min(paths, key=lambda p: (_EXTENSION_RANK.get(p.suffix.lower(), len(_EXTENSION_RANK)), p.name))


def _walk(root: Path) -> Iterator[tuple[Path, list[Path]]]:
    """(folder, its files) for root and every folder below it, sorted, hidden folders skipped."""
    visited: set[tuple[int, int]] = set()
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        try:
            stat = os.stat(directory)
        except OSError:
            subdirectories[:] = []
            continue
        identity = (stat.st_dev, stat.st_ino)
        if identity in visited:  # a link loop
            subdirectories[:] = []
            continue
        visited.add(identity)
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        folder = Path(directory)
        paths = [folder / name for name in sorted(files) if not name.startswith(".")]
        yield folder, [path for path in paths if path.is_file()]


def _collection_of(parent: Path, root: Path) -> str:
    """The collection of songs whose folders (or files) lie in `parent`."""
    relative = parent.relative_to(root).as_posix() if parent != root else "."
    if relative == ".":
        return root.name or root.resolve().name or "collection"
    return relative


def _song_folder_collection(folder: Path, root: Path) -> str:
    if folder == root:
        # The searched folder is itself the song folder: its parent names the collection.
        resolved = root.resolve()
        return resolved.parent.name or resolved.name or "collection"
    return _collection_of(folder.parent, root)


def _scan_error(folder: Path, error: OSError) -> DatasetScan:
    reason = f"cannot list the folder ({error.strerror or error}); check its permissions"
    return DatasetScan(skipped=(SkippedSong(folder, reason),))


@attrs.frozen
class UnmixioDataset:
    """`<target>_<song>.<ext>` + `rest_<song>.<ext>` (or `instrumental_<song>.<ext>` for vocals)."""

    name: str = "unmixio"
    priority: int = 20

    def find_tracks(self, folder: Path, target: str) -> list[Track]:
        return list(self.scan(folder, target).tracks)

    def scan(self, folder: Path, target: str) -> DatasetScan:
        root = Path(folder)
        rest_prefixes = ["rest"] + (["instrumental"] if target.lower() == "vocals" else [])
        pattern = re.compile(
            rf"^(?P<role>{re.escape(target)}|{'|'.join(rest_prefixes)})_(?P<song>.+)\Z", re.IGNORECASE | re.DOTALL
        )
        tracks: list[Track] = []
        skipped: list[SkippedSong] = []
        try:
            for directory, files in _walk(root):
                targets: dict[str, list[Path]] = {}
                rests: dict[str, dict[str, list[Path]]] = {}
                for path in files:
                    if not _is_audio(path) or _is_multistream(path):
                        continue
                    match = pattern.match(path.name[: -len(path.suffix)])
                    if match is None:
                        continue
                    role, song = match.group("role").lower(), match.group("song")
                    if role == target.lower():
                        targets.setdefault(song.lower(), []).append(path)
                    else:
                        rests.setdefault(song.lower(), {}).setdefault(role, []).append(path)
                if not targets and not rests:
                    continue
                self._pair(root, directory, target, rest_prefixes, targets, rests, tracks, skipped)
        except OSError as error:
            return _scan_error(root, error)
        return DatasetScan(tracks=tuple(tracks), skipped=tuple(skipped))

    def targets(self, folder: Path) -> dict[str, int]:
        """{instrument: songs} named by `<instrument>_<song>` files that have a `rest_<song>` (or, for
        vocals, `instrumental_<song>`) beside them: what the file names say the collection is for."""
        found: dict[str, int] = {}
        try:
            for _, files in _walk(Path(folder)):
                for name in self._folder_targets(files):
                    found[name] = found.get(name, 0) + 1
        except OSError:
            return {}  # scan reports the unreadable folder
        return found

    @staticmethod
    def _folder_targets(files: list[Path]) -> list[str]:
        stems = [path.name[: -len(path.suffix)].lower() for path in files
                 if _is_audio(path) and not _is_multistream(path)]
        rest_songs = {stem.split("_", 1)[1]: stem.split("_", 1)[0] for stem in stems
                      if "_" in stem and stem.split("_", 1)[0] in ("rest", "instrumental")}
        names = []
        for stem in dict.fromkeys(stems):
            if stem.split("_", 1)[0] in ("rest", "instrumental"):
                continue
            for song, prefix in rest_songs.items():
                instrument = stem[: -len(song) - 1]
                if stem.endswith(f"_{song}") and instrument and (prefix == "rest" or instrument == "vocals"):
                    names.append(instrument)
                    break
        return names

    def _pair(
        self,
        root: Path,
        directory: Path,
        target: str,
        rest_prefixes: list[str],
        targets: dict[str, list[Path]],
        rests: dict[str, dict[str, list[Path]]],
        tracks: list[Track],
        skipped: list[SkippedSong],
    ) -> None:
        def rest_file(by_role: dict[str, list[Path]]) -> Path:
            for prefix in rest_prefixes:
                if prefix in by_role:
                    return _preferred(by_role[prefix])
            raise AssertionError("unreachable")

        pairs: list[tuple[str, Path, Path]] = []
        lonely: list[Path] = []
        for song, paths in sorted(targets.items()):
            if song in rests:
                pairs.append((song, _preferred(paths), rest_file(rests[song])))
            else:
                lonely.append(_preferred(paths))
        unused_rests = [song for song in rests if song not in targets]
        # The seed globbed `vocals_*` and `instrumental_*` independently: one target and one rest
        # file in a folder belong together even when their song parts differ.
        if len(targets) == 1 and not pairs and len(unused_rests) == 1:
            pairs.append((next(iter(targets)), lonely.pop(), rest_file(rests[unused_rests[0]])))
            unused_rests = []
        rest_names = " or ".join(f"'{prefix}_<song>.<ext>'" for prefix in rest_prefixes)
        for path in lonely:
            skipped.append(SkippedSong(directory, f"'{path.name}' has no rest stem: add {rest_names} beside it"))
        for song in unused_rests:
            path = rest_file(rests[song])
            skipped.append(SkippedSong(
                directory, f"'{path.name}' has no target stem: add '{target}_<song>.<ext>' beside it"
            ))
        single = len(pairs) == 1 and not lonely and not unused_rests
        for song, target_path, rest_path in pairs:
            if single:
                name, collection = directory.name or song, _song_folder_collection(directory, root)
            else:
                name = target_path.name[len(target) + 1: -len(target_path.suffix)]
                collection = _collection_of(directory, root)
            tracks.append(Track(name=name, collection=collection, folder=directory,
                                target=(StemFile(target_path),), rest=(StemFile(rest_path),)))


@attrs.frozen
class StemsDataset:
    """One audio file per stem: `<target>.<ext>` against the sum of the other stem files."""

    name: str = "stems"
    priority: int = 30

    def find_tracks(self, folder: Path, target: str) -> list[Track]:
        return list(self.scan(folder, target).tracks)

    def scan(self, folder: Path, target: str) -> DatasetScan:
        root = Path(folder)
        wanted = target.lower()
        tracks: list[Track] = []
        skipped: list[SkippedSong] = []
        try:
            for directory, files in _walk(root):
                audio = [path for path in files if _is_audio(path) and not _is_multistream(path)]
                stems = [path for path in audio if path.stem.lower() not in _MIXTURE_NAMES]
                targets = [path for path in stems if path.stem.lower() == wanted]
                if not targets:
                    continue
                rest = [path for path in stems if path.stem.lower() != wanted]
                # One file per stem name: the lossless one when a stem exists in several formats.
                by_stem: dict[str, list[Path]] = {}
                for path in rest:
                    by_stem.setdefault(path.stem.lower(), []).append(path)
                rest = sorted((_preferred(paths) for paths in by_stem.values()), key=lambda p: p.name.lower())
                if not rest:
                    skipped.append(SkippedSong(directory, (
                        f"'{_preferred(targets).name}' has no other stems to form the rest: add the other "
                        "stem files (drums.wav, bass.wav, ...) beside it"
                    )))
                    continue
                tracks.append(Track(
                    name=directory.name or root.resolve().name,
                    collection=_song_folder_collection(directory, root),
                    folder=directory,
                    target=(StemFile(_preferred(targets)),),
                    rest=tuple(StemFile(path) for path in rest),
                ))
        except OSError as error:
            return _scan_error(root, error)
        return DatasetScan(tracks=tuple(tracks), skipped=tuple(skipped))


@attrs.frozen
class MusdbStemDataset:
    """MUSDB18 `.stem.mp4` files: stream 0 mixture, 1 drums, 2 bass, 3 other, 4 vocals."""

    name: str = "musdb-stem"
    priority: int = 10

    def find_tracks(self, folder: Path, target: str) -> list[Track]:
        return list(self.scan(folder, target).tracks)

    def scan(self, folder: Path, target: str) -> DatasetScan:
        root = Path(folder)
        stream = MUSDB_STREAMS.get(target.lower())
        tracks: list[Track] = []
        skipped: list[SkippedSong] = []
        try:
            for directory, files in _walk(root):
                for path in files:
                    if not _is_multistream(path):
                        continue
                    if stream is None:
                        skipped.append(SkippedSong(path, (
                            f"MUSDB18 stem files hold drums, bass, other and vocals, not '{target}': "
                            f"set the target to one of {', '.join(MUSDB_STREAMS)}"
                        )))
                        continue
                    name = path.name
                    name = name[: -len(next(s for s in _STEM_FILE_SUFFIXES if name.lower().endswith(s)))]
                    tracks.append(Track(
                        name=name,
                        collection=_collection_of(directory, root),
                        folder=directory,
                        target=(StemFile(path, stream),),
                        rest=tuple(StemFile(path, index) for index in sorted(MUSDB_STREAMS.values())
                                   if index != stream),
                    ))
        except OSError as error:
            return _scan_error(root, error)
        return DatasetScan(tracks=tuple(tracks), skipped=tuple(skipped))


DATASETS = (UnmixioDataset(), StemsDataset(), MusdbStemDataset())
# Old layout names, registered too so that the configurations and commands that use them keep working.
# `seed` was the unmixio layout's first name; it read like the random seed.
LAYOUT_ALIASES = {"seed": "unmixio"}
