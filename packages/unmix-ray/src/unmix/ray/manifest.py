"""What a catalogue holds: the songs behind a folder, a glob or a manifest file, listed before any work.

Local files are named here, as `unmix predict` names them (the folder source's names for a folder,
the file's stem otherwise), so two songs that would write the same stems are refused before the
cluster starts. A link is named by its source only when a worker fetches it.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from unmix.core.errors import UnmixError
from unmix.core.interfaces import SongInput
from unmix.core.plugins import plugin_manager
from unmix.core.separation.prediction import find_source, songs_outside_output

MANIFEST_SUFFIXES = (".txt", ".csv", ".lst", ".m3u")
_GLOB_CHARACTERS = set("*?[")


@attrs.frozen
class CatalogueSong:
    """One song of a catalogue: where a worker opens it, and its name when it is known before separating."""

    uri: str
    """An absolute local path, or a link a source plugin claims."""
    name: str | None = None

    @property
    def key(self) -> str:
        """The song's identity across runs: its record and staging folder are named after it."""
        return hashlib.sha256(self.uri.encode("utf-8")).hexdigest()[:20]


def list_songs(spec: str, output: Path) -> list[CatalogueSong]:
    """The songs of `spec` (a folder, a glob, a manifest file, or one song), without files inside `output`."""
    path = Path(spec).expanduser()
    if path.is_dir():
        songs = _folder_songs(path, output)
    elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        songs = _manifest_songs(path, output)
    elif path.is_file():
        songs = [_file_song(path)]
    elif _GLOB_CHARACTERS & set(spec):
        songs = _glob_songs(spec, output)
    else:
        raise UnmixError(f"'{spec}' is neither a folder, a manifest file ({', '.join(MANIFEST_SUFFIXES)}), an audio "
                         "file nor a glob that matches files; check the path (quote a glob so the shell leaves it)")
    return _without_clashes(_without_repeats(songs), spec)


def _folder_songs(folder: Path, output: Path) -> list[CatalogueSong]:
    with tempfile.TemporaryDirectory(prefix="unmix-catalogue-") as temporary:
        found = plugin_manager().get("sources", "folder").songs(str(folder), Path(temporary))
    return [_local_song(song) for song in songs_outside_output(found, folder, output)]


def _file_song(path: Path) -> CatalogueSong:
    with tempfile.TemporaryDirectory(prefix="unmix-catalogue-") as temporary:
        (song,) = plugin_manager().get("sources", "file").songs(str(path), Path(temporary))
    return _local_song(song)


def _local_song(song: SongInput) -> CatalogueSong:
    return CatalogueSong(uri=str(song.path.resolve()), name=song.name)


def _glob_songs(pattern: str, output: Path) -> list[CatalogueSong]:
    files = sorted(Path(match) for match in glob.glob(str(Path(pattern).expanduser()), recursive=True))
    files = [file for file in files if file.is_file() and output.resolve() not in file.resolve().parents]
    if not files:
        raise UnmixError(f"the glob '{pattern}' matches no files (outside the output folder); check the pattern")
    return [_file_song(file) for file in files]


def _manifest_songs(manifest: Path, output: Path) -> list[CatalogueSong]:
    """Every line's songs; a path that does not exist stays a song (its worker records the error)
    so that one missing file among thousands does not stop the catalogue."""
    songs = []
    for line, uri in _manifest_uris(manifest):
        local = Path(uri).expanduser()
        local = local if local.is_absolute() else manifest.parent / local
        if local.is_dir():
            songs.extend(_folder_songs(local, output))
        elif local.is_file():
            songs.append(_file_song(local))
        else:
            try:
                source = find_source(uri)
            except UnmixError as error:
                raise UnmixError(f"manifest '{manifest}' line {line}: {error}") from None
            songs.append(CatalogueSong(uri=str(local.resolve()) if source.name == "file" else uri))
    if not songs:
        raise UnmixError(f"manifest '{manifest}' lists no songs; give one URI per line, or a CSV with a 'uri' column")
    return songs


def _manifest_uris(manifest: Path) -> Iterable[tuple[int, str]]:
    """(line number, URI) of every entry: a CSV's `uri` column, or every line that is not blank or a # comment."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UnmixError(f"cannot read manifest '{manifest}': {getattr(error, 'strerror', None) or error}; "
                         "give a UTF-8 text file") from None
    if manifest.suffix.lower() == ".csv":
        rows = csv.DictReader(text.splitlines())
        if "uri" not in (rows.fieldnames or []):
            raise UnmixError(f"manifest '{manifest}' has no 'uri' column (its columns: "
                             f"{', '.join(rows.fieldnames or []) or 'none'}); name the column of songs 'uri'")
        return [(number + 2, row["uri"].strip()) for number, row in enumerate(rows) if (row["uri"] or "").strip()]
    return [(number + 1, line.strip()) for number, line in enumerate(text.splitlines())
            if line.strip() and not line.lstrip().startswith("#")]


def _without_repeats(songs: Sequence[CatalogueSong]) -> list[CatalogueSong]:
    unique: dict[str, CatalogueSong] = {}
    for song in songs:
        unique.setdefault(song.uri, song)
    return list(unique.values())


def _without_clashes(songs: list[CatalogueSong], spec: str) -> list[CatalogueSong]:
    """Refuse two songs that would write the same stems, as `unmix predict` does."""
    seen: dict[str, str] = {}
    for song in songs:
        if song.name is None:
            continue
        earlier = seen.setdefault(song.name.lower(), song.uri)
        if earlier != song.uri:
            raise UnmixError(f"'{earlier}' and '{song.uri}' in '{spec}' are both named '{song.name}', so their stems "
                             "would overwrite each other; rename one, or list them through one folder (which names "
                             "clashing songs after their subfolders)")
    return songs
