"""Where songs to separate come from: a file, a folder of files, or a YouTube link.

Each source turns a URI into local files (`SongInput`), so the prediction engine only ever reads
audio from disk, whichever source the song came from. `find_source` picks the source for a URI
through the plugin registry, so a third-party source (a cloud bucket, another video site) is
chosen exactly like the built-in ones.

YouTube downloads go through pytubefix when it is installed (the `youtube` extra of
unmix-sources) and through pytube otherwise: pytube is the library users ask for, but its last
release (15) fails against YouTube today, while pytubefix keeps the same API and is maintained.
Whatever goes wrong in a download becomes one line that names the URL, the library that failed
and what to try next.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
import unicodedata
import urllib.error
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

from unmix.core.errors import AudioError, UnmixError, first_line
from unmix.core.interfaces import SongInput

__all__ = [
    "AUDIO_EXTENSIONS",
    "FileSource",
    "FolderSource",
    "YouTubeSource",
    "safe_song_name",
    "youtube_video_id",
]

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aif", ".aiff")
"""What the folder source collects; a single file may be anything ffmpeg decodes."""

_EXTENSION_LIST = ", ".join(AUDIO_EXTENSIONS)
_MAX_NAME_LENGTH = 120


# --------------------------------------------------------------------------------------------
# Choosing a source


def safe_song_name(title: str, fallback: str = "song") -> str:
    """A name that is safe inside output file names on every common file system.

    Song names end up in `<song>_<stem>.<ext>`, so path separators, characters Windows refuses,
    control characters and a leading dot (a hidden file) are replaced, and long video titles are
    cut to a length every file system accepts with the suffix added.
    """
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", str(title)))
    text = "".join("_" if unicodedata.category(c).startswith("C") else c for c in text)
    text = re.sub(r'[<>:"/\\|?*]', "_", text)
    text = re.sub(r"_{2,}", "_", text).strip(" ._")
    text = text[:_MAX_NAME_LENGTH].rstrip(" ._")
    return text or fallback


# --------------------------------------------------------------------------------------------
# Local files


def _looks_like_url(uri: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", uri))


def _local_path(uri: str) -> Path:
    return Path(os.path.expanduser(uri))


class FileSource:
    """One audio file; the song is named after the file's stem (`song.mp3` -> `song`).

    It also claims paths with an audio extension that do not exist, so that a mistyped file name
    gets "does not exist" rather than "no source understands it". Any existing file is accepted:
    decoding (soundfile, then ffmpeg) decides whether it really is audio.
    """

    name = "file"

    def matches(self, uri: str) -> bool:
        if _looks_like_url(uri):
            return False
        path = _local_path(uri)
        return path.is_file() or (not path.exists() and path.suffix.lower() in AUDIO_EXTENSIONS)

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        path = _local_path(uri)
        if not path.exists():
            raise AudioError(f"cannot read song '{uri}': the file does not exist; check the path")
        if not path.is_file():
            raise AudioError(f"cannot read song '{uri}': it is not a file; give an audio file or use a folder source")
        return [SongInput(name=safe_song_name(path.stem), path=path)]


class FolderSource:
    """Every audio file under a folder, recursively, in a stable (sorted) order.

    Hidden folders and files are skipped: they hold editor and OS clutter, such as macOS's
    `._song.wav` resource forks, which have audio extensions but are not audio. Songs are named
    after their file stem; when two files share a stem (`a/song.wav`, `b/song.wav`) their names
    use the path relative to the folder instead, so their output files never overwrite each other.
    """

    name = "folder"

    def matches(self, uri: str) -> bool:
        return not _looks_like_url(uri) and _local_path(uri).is_dir()

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        folder = _local_path(uri)
        if not folder.is_dir():
            raise AudioError(f"cannot read songs from '{uri}': it is not a folder; check the path")
        files = sorted(_audio_files(folder), key=lambda p: (str(p.relative_to(folder)).lower(), str(p)))
        if not files:
            raise AudioError(
                f"no audio files ({_EXTENSION_LIST}) in folder '{uri}' or its subfolders; "
                "point to a folder that contains songs"
            )
        names = _unique_names(files, folder)
        return [SongInput(name=name, path=path) for name, path in zip(names, files, strict=True)]


def _audio_files(folder: Path) -> Iterable[Path]:
    def fail(error: OSError) -> None:
        where = error.filename or folder
        raise AudioError(f"cannot list folder '{where}': {error.strerror or error}; check its permissions")

    for root, directories, files in os.walk(folder, onerror=fail):
        directories[:] = [d for d in directories if not d.startswith(".")]
        for file_name in files:
            if not file_name.startswith(".") and Path(file_name).suffix.lower() in AUDIO_EXTENSIONS:
                yield Path(root) / file_name


def _unique_names(files: list[Path], folder: Path) -> list[str]:
    """Stems where they are unique; otherwise the relative path, then also the extension."""

    def collisions(names: list[str]) -> set[str]:
        lowered = [n.lower() for n in names]
        return {n for n in lowered if lowered.count(n) > 1}

    names = [safe_song_name(path.stem) for path in files]
    clashing = collisions(names)
    names = [
        safe_song_name("_".join(path.relative_to(folder).with_suffix("").parts)) if name.lower() in clashing else name
        for name, path in zip(names, files, strict=True)
    ]
    clashing = collisions(names)
    return [
        f"{name}_{path.suffix.lstrip('.').lower()}" if name.lower() in clashing else name
        for name, path in zip(names, files, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# YouTube

_YOUTUBE_HOSTS = {"youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be", "youtube-nocookie.com"}
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_PATH_PREFIXES = ("shorts", "embed", "live", "v")
_LIBRARIES = ("pytubefix", "pytube")
_INSTALL = "pip install 'unmix-sources[youtube]'"
_UPGRADE = "pip install -U pytubefix"
_BAD_LINK_HINT = (
    "expected https://www.youtube.com/watch?v=<11-character id>, https://youtu.be/<id> or a /shorts/ link; "
    "copy the link from the video's Share button"
)


def _youtube_host(uri: str) -> str | None:
    """The YouTube host of `uri` (scheme optional), or None when it is not a YouTube address."""
    text = uri.strip()
    if not _looks_like_url(text):
        text = "https://" + text
    try:
        host = (urlsplit(text).hostname or "").lower()
    except ValueError:
        return None
    host = host.removeprefix("www.")
    return host if host in _YOUTUBE_HOSTS else None


def youtube_video_id(uri: str) -> str:
    """The 11-character video id of a YouTube link; an error naming the link when it has none.

    Links are reduced to their id (and later to the canonical watch URL) so that shorts, music,
    embed and youtu.be links, and links with playlist or time parameters, all download the same way.
    """
    host = _youtube_host(uri)
    if host is None:
        raise UnmixError(f"'{uri}' is not a YouTube link; {_BAD_LINK_HINT}")
    text = uri.strip() if _looks_like_url(uri.strip()) else "https://" + uri.strip()
    parts = urlsplit(text)
    segments = [s for s in parts.path.split("/") if s]
    candidate = ""
    if host == "youtu.be":
        candidate = segments[0] if segments else ""
    elif segments[:1] == ["watch"]:
        candidate = (parse_qs(parts.query).get("v") or [""])[0]
    elif len(segments) >= 2 and segments[0] in _PATH_PREFIXES:
        candidate = segments[1]
    if not _VIDEO_ID.match(candidate):
        raise UnmixError(f"'{uri}' is not a link to a YouTube video; {_BAD_LINK_HINT}")
    return candidate


def _load_youtube_library() -> ModuleType:
    """pytubefix if installed, else pytube: looked up on every download so tests can swap either."""
    for name in _LIBRARIES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise UnmixError(f"YouTube downloads need pytubefix (or pytube), and neither can be imported; run {_INSTALL}")


def _in_mro(error: BaseException, *names: str) -> bool:
    """Whether `error` is one of the named classes, by name.

    pytube and pytubefix define same-named but distinct exception hierarchies, and either may be
    missing, so classes are recognised by name instead of importing both libraries' exceptions.
    """
    return any(cls.__name__ in names for cls in type(error).__mro__)


def _download_failure(url: str, library: str, error: BaseException) -> UnmixError:
    """One line: which URL, which library, what went wrong, and what the user can do about it."""
    detail = first_line(error)
    prefix = f"cannot download '{url}' with {library}"
    if _in_mro(error, "VideoUnavailable"):
        return UnmixError(
            f"{prefix}: the video is unavailable ({detail}); it may be private, removed, age- or "
            "region-restricted: check that the link plays in a browser"
        )
    if isinstance(error, urllib.error.HTTPError):
        hint = f"{_UPGRADE} (pytube 15 no longer works with YouTube)" if library == "pytube" else _UPGRADE
        reason = f" {error.reason}" if error.reason else ""
        return UnmixError(f"{prefix}: YouTube answered HTTP {error.code}{reason}; check the link, then {hint}")
    if isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror)):
        return UnmixError(f"{prefix}: cannot reach YouTube ({detail}); check your internet connection")
    if _in_mro(error, "RegexMatchError", "ExtractError", "HTMLParseError"):
        return UnmixError(
            f"{prefix}: {library} cannot read YouTube's page ({type(error).__name__}: {detail}); "
            f"check the link, then {_UPGRADE}"
        )
    if isinstance(error, OSError):
        return UnmixError(
            f"{prefix}: cannot save the download ({detail}); check the free space and permissions "
            "of the temporary folder"
        )
    return UnmixError(
        f"{prefix}: {library} failed ({type(error).__name__}: {detail}); YouTube may have changed: {_UPGRADE}"
    )


def _stream_extension(stream: object) -> str:
    """m4a for YouTube's mp4 audio (what the folder source and players expect), else the subtype."""
    subtype = str(getattr(stream, "subtype", "") or "mp4").lower()
    return "m4a" if subtype == "mp4" else re.sub(r"[^a-z0-9]", "", subtype) or "m4a"


class YouTubeSource:
    """The audio-only stream of one YouTube video, downloaded into the temporary folder.

    Audio-only (highest bitrate) rather than the seed's progressive video: it is a fraction of the
    size, and ffmpeg decodes both m4a and webm/opus. The song is named after the video's title.
    Any exception from the download library becomes an `UnmixError`: they come from YouTube, the
    network or a library that YouTube has outpaced, never from a bug the user could report to us.
    """

    name = "youtube"

    def __init__(self, load_library: Callable[[], ModuleType] = _load_youtube_library) -> None:
        self._load_library = load_library

    def matches(self, uri: str) -> bool:
        return _youtube_host(uri) is not None

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        video_id = youtube_video_id(uri)
        library = self._load_library()
        library_name = library.__name__.split(".")[0]
        url = f"https://www.youtube.com/watch?v={video_id}"
        temp_folder = Path(temp_folder)
        try:
            temp_folder.mkdir(parents=True, exist_ok=True)
            video = library.YouTube(url)
            title = video.title
            stream = video.streams.filter(only_audio=True).order_by("abr").desc().first()
            if stream is None:
                raise UnmixError(
                    f"cannot download '{uri}' with {library_name}: the video has no audio-only stream; "
                    "try another video or link"
                )
            file_name = f"youtube-{video_id}.{_stream_extension(stream)}"
            returned = stream.download(output_path=str(temp_folder), filename=file_name)
        except UnmixError:
            raise
        except Exception as error:
            raise _download_failure(uri, library_name, error) from error
        path = Path(returned) if isinstance(returned, str) and returned else temp_folder / file_name
        if not path.is_file() or path.stat().st_size == 0:
            raise UnmixError(
                f"cannot download '{uri}' with {library_name}: the download produced no data; "
                f"check your internet connection, then {_UPGRADE}"
            )
        return [SongInput(name=safe_song_name(title, fallback=video_id), path=path)]
