"""Song sources of unmix-sources: file, folder and YouTube (with the download library faked at its
boundary, so nothing here touches the network)."""

from __future__ import annotations

import subprocess
import sys
import types
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from unmix.core.data.audio import load_audio
from unmix.core.errors import AudioError, UnmixError
from unmix.core.plugins import plugin_manager
from unmix.core.separation.prediction import find_source
from unmix.sources.sources import (
    FileSource,
    FolderSource,
    YouTubeSource,
    safe_song_name,
    youtube_video_id,
)

RATE = 8000
VIDEO_ID = "dQw4w9WgXcQ"
URL = f"https://www.youtube.com/watch?v={VIDEO_ID}"


def write_wav(path: Path, seconds: float = 0.2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE, format="WAV")
    return path


def write_m4a(path: Path) -> Path:
    """What YouTube's audio-only stream is: AAC in an mp4 container, made here with ffmpeg."""
    source = write_wav(path.with_name(path.name + ".source.wav"))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-c:a", "aac", "-f", "mp4", str(path)],
        check=True,
    )
    source.unlink()
    return path


# --------------------------------------------------------------------------------------------
# Registration and choosing a source


def test_the_plugin_registers_file_folder_and_youtube() -> None:
    registry = plugin_manager().registry("sources")
    assert {"file", "folder", "youtube"} <= set(registry.names())
    assert isinstance(registry.get("youtube"), YouTubeSource)


def test_find_source_picks_the_source_for_each_kind_of_uri(tmp_path: Path) -> None:
    song = write_wav(tmp_path / "song.wav")
    assert find_source(str(song)).name == "file"
    assert find_source(str(tmp_path)).name == "folder"
    assert find_source(URL).name == "youtube"
    assert find_source("youtu.be/" + VIDEO_ID).name == "youtube"
    assert find_source(str(tmp_path / "typo.mp3")).name == "file"  # so the error says "does not exist"


def test_find_source_names_a_uri_nothing_understands(tmp_path: Path) -> None:
    with pytest.raises(UnmixError, match=r"'.*nowhere' is neither an existing audio file or folder.*sources: file"):
        find_source(str(tmp_path / "nowhere"))
    with pytest.raises(UnmixError, match="https://vimeo.com/1"):
        find_source("https://vimeo.com/1")


# --------------------------------------------------------------------------------------------
# File


def test_a_file_is_one_song_named_after_its_stem(tmp_path: Path) -> None:
    song = write_wav(tmp_path / "My Song.wav")
    songs = FileSource().songs(str(song), tmp_path / "temp")
    assert [(s.name, s.path) for s in songs] == [("My Song", song)]
    assert not (tmp_path / "temp").exists(), "a local file is used in place, never copied"


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"cannot read song '.*missing.mp3': the file does not exist"):
        FileSource().songs(str(tmp_path / "missing.mp3"), tmp_path)
    with pytest.raises(AudioError, match="it is not a file"):
        FileSource().songs(str(tmp_path), tmp_path)


def test_the_file_source_does_not_claim_links_or_folders(tmp_path: Path) -> None:
    assert not FileSource().matches(URL)
    assert not FileSource().matches(str(tmp_path))
    assert not FileSource().matches(str(tmp_path / "no-extension"))


# --------------------------------------------------------------------------------------------
# Folder


def test_a_folder_gives_every_audio_file_recursively_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ["b.wav", "a.WAV", "sub/c.mp3", "sub/deeper/d.flac", "e.ogg", "f.m4a", "g.aif", "h.AIFF"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"audio")  # the source lists files; decoding comes later
    for name in ["notes.txt", "cover.jpg", "video.mkv", ".hidden.wav", "._a.wav", ".git/x.wav", "sub/.cache/y.mp3"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"not a song")

    songs = FolderSource().songs(str(tmp_path), tmp_path / "temp")

    relative = [str(s.path.relative_to(tmp_path)) for s in songs]
    assert relative == ["a.WAV", "b.wav", "e.ogg", "f.m4a", "g.aif", "h.AIFF", "sub/c.mp3", "sub/deeper/d.flac"]
    assert [s.name for s in songs] == ["a", "b", "e", "f", "g", "h", "c", "d"]


def test_songs_with_the_same_stem_get_distinct_names(tmp_path: Path) -> None:
    for name in ["live/song.wav", "studio/song.wav", "studio/song.mp3", "other.flac"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"audio")
    names = [s.name for s in FolderSource().songs(str(tmp_path), tmp_path)]
    assert names == ["live_song", "other", "studio_song_mp3", "studio_song_wav"]
    assert len(set(names)) == len(names)


def test_a_folder_without_audio_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("no songs here")
    (tmp_path / ".hidden").mkdir()
    write_wav(tmp_path / ".hidden" / "skipped.wav")
    with pytest.raises(AudioError, match=rf"no audio files \(.wav, .mp3.*\) in folder '{tmp_path}' or its subfolders"):
        FolderSource().songs(str(tmp_path), tmp_path)


def test_the_folder_source_claims_only_existing_folders(tmp_path: Path) -> None:
    assert FolderSource().matches(str(tmp_path))
    assert not FolderSource().matches(str(tmp_path / "missing"))
    assert not FolderSource().matches(str(write_wav(tmp_path / "a.wav")))


def test_song_names_are_safe_in_file_names() -> None:
    assert safe_song_name('AC/DC: "Back in Black" <Official?> *|') == "AC_DC_ _Back in Black_ _Official"
    assert safe_song_name("..hidden  title\n") == "hidden title"
    assert safe_song_name("   ") == "song"
    assert safe_song_name("///", fallback="x") == "x"
    assert safe_song_name("Ünïcode – ok") == "Ünïcode – ok"
    assert len(safe_song_name("a" * 500)) == 120


# --------------------------------------------------------------------------------------------
# YouTube: links


@pytest.mark.parametrize(
    "link",
    [
        URL,
        f"http://youtube.com/watch?v={VIDEO_ID}&list=PL123&t=42s",
        f"www.youtube.com/watch?v={VIDEO_ID}",
        f"https://m.youtube.com/watch?v={VIDEO_ID}",
        f"https://music.youtube.com/watch?v={VIDEO_ID}&feature=share",
        f"https://youtu.be/{VIDEO_ID}?si=abc",
        f"youtu.be/{VIDEO_ID}",
        f"https://www.youtube.com/shorts/{VIDEO_ID}",
        f"https://youtube.com/shorts/{VIDEO_ID}?feature=share",
        f"https://www.youtube.com/embed/{VIDEO_ID}",
    ],
)
def test_youtube_links_of_every_kind_give_the_video_id(link: str) -> None:
    assert YouTubeSource().matches(link)
    assert youtube_video_id(link) == VIDEO_ID


@pytest.mark.parametrize(
    "link",
    [
        "https://www.youtube.com/",
        "https://www.youtube.com/watch",
        "https://www.youtube.com/watch?v=short",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQextra",
        "https://www.youtube.com/playlist?list=PL123",
        "https://youtu.be/",
        "https://www.youtube.com/shorts/",
    ],
)
def test_a_malformed_youtube_link_is_a_clear_error(link: str, tmp_path: Path) -> None:
    source = YouTubeSource(load_library=lambda: pytest.fail("nothing may be downloaded"))
    assert source.matches(link)
    with pytest.raises(UnmixError, match=r"is not a link to a YouTube video; expected https://www.youtube.com/watch"):
        source.songs(link, tmp_path)


@pytest.mark.parametrize("uri", ["https://vimeo.com/123", "https://notyoutube.com/watch?v=" + VIDEO_ID, "song.mp3"])
def test_the_youtube_source_ignores_other_addresses(uri: str) -> None:
    assert not YouTubeSource().matches(uri)


# --------------------------------------------------------------------------------------------
# YouTube: downloads through a fake library


class FakeLibraryError(Exception):
    pass


class VideoUnavailable(FakeLibraryError):
    pass


class VideoPrivate(VideoUnavailable):
    pass


class RegexMatchError(FakeLibraryError):
    pass


class FakeStream:
    subtype = "mp4"

    def __init__(self, library: FakeLibrary) -> None:
        self.library = library

    def download(self, output_path: str, filename: str) -> str:
        self.library.calls.append(("download", output_path, filename))
        self.library.fail_at("download")
        path = Path(output_path) / filename
        if self.library.write_file:
            write_m4a(path)
        return str(path)


class FakeQuery:
    def __init__(self, library: FakeLibrary) -> None:
        self.library = library

    def filter(self, **criteria: Any) -> FakeQuery:
        self.library.calls.append(("filter", criteria))
        return self

    def order_by(self, key: str) -> FakeQuery:
        self.library.calls.append(("order_by", key))
        return self

    def desc(self) -> FakeQuery:
        self.library.calls.append(("desc",))
        return self

    def first(self) -> FakeStream | None:
        return FakeStream(self.library) if self.library.has_audio else None


class FakeLibrary(types.ModuleType):
    """A stand-in for the pytubefix / pytube module: `YouTube(url).title`, `.streams...download()`."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls: list[tuple[Any, ...]] = []
        self.error: BaseException | None = None
        self.error_at = ""
        self.has_audio = True
        self.write_file = True
        self.title = "Artist - Song / Live at <Venue>"
        library = self

        class YouTube:
            def __init__(self, url: str) -> None:
                library.calls.append(("YouTube", url))
                library.fail_at("constructor")

            @property
            def title(self) -> str:
                library.fail_at("title")
                return library.title

            @property
            def streams(self) -> FakeQuery:
                library.fail_at("streams")
                return FakeQuery(library)

        self.YouTube = YouTube

    def fail_at(self, point: str) -> None:
        if self.error is not None and self.error_at == point:
            raise self.error


@pytest.fixture
def pytubefix(monkeypatch: pytest.MonkeyPatch) -> FakeLibrary:
    """The fake stands in for pytubefix whether or not the real one is installed."""
    library = FakeLibrary("pytubefix")
    monkeypatch.setitem(sys.modules, "pytubefix", library)
    monkeypatch.setitem(sys.modules, "pytube", None)
    return library


def test_a_video_downloads_its_best_audio_stream_into_the_temp_folder(pytubefix: FakeLibrary, tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    link = f"https://youtube.com/shorts/{VIDEO_ID}?feature=share"

    songs = YouTubeSource().songs(link, temp)

    assert len(songs) == 1
    assert songs[0].name == "Artist - Song _ Live at _Venue"
    assert songs[0].path == temp / f"youtube-{VIDEO_ID}.m4a"
    assert ("YouTube", URL) in pytubefix.calls
    assert ("filter", {"only_audio": True}) in pytubefix.calls
    assert pytubefix.calls.index(("order_by", "abr")) < pytubefix.calls.index(("desc",))
    audio = load_audio(songs[0].path)
    assert audio.sample_rate == RATE and audio.frames > 0


def test_pytube_is_used_when_pytubefix_is_not_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytube = FakeLibrary("pytube")
    monkeypatch.setitem(sys.modules, "pytubefix", None)
    monkeypatch.setitem(sys.modules, "pytube", pytube)
    songs = YouTubeSource().songs(URL, tmp_path)
    assert songs[0].path.is_file() and ("YouTube", URL) in pytube.calls

    pytube.error, pytube.error_at = urllib.error.HTTPError(URL, 400, "Bad Request", {}, None), "streams"  # type: ignore[arg-type]
    with pytest.raises(UnmixError) as caught:
        YouTubeSource().songs(URL, tmp_path)
    message = str(caught.value)
    assert f"cannot download '{URL}' with pytube: YouTube answered HTTP 400 Bad Request" in message
    assert "pip install -U pytubefix (pytube 15 no longer works with YouTube)" in message


def test_without_either_library_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pytubefix", None)
    monkeypatch.setitem(sys.modules, "pytube", None)
    with pytest.raises(UnmixError, match=r"neither can be imported; run pip install 'unmix-sources\[youtube\]'"):
        YouTubeSource().songs(URL, tmp_path)


@pytest.mark.parametrize(
    ("error", "where", "expected"),
    [
        (VideoPrivate(f"{VIDEO_ID} is a private video"), "title", "the video is unavailable"),
        (VideoUnavailable(f"{VIDEO_ID} is unavailable"), "constructor", "check that the link plays in a browser"),
        (RegexMatchError("get_throttling_function_name: could not find match"), "streams",
         "pytubefix cannot read YouTube's page (RegexMatchError"),
        (urllib.error.URLError("[Errno -3] Temporary failure in name resolution"), "title",
         "cannot reach YouTube (<urlopen error [Errno -3] Temporary failure in name resolution>); check your internet"),
        (urllib.error.HTTPError(URL, 403, "Forbidden", {}, None), "download",  # type: ignore[arg-type]
         "YouTube answered HTTP 403 Forbidden; check the link, then pip install -U pytubefix"),
        (ConnectionResetError(104, "Connection reset by peer"), "download", "cannot reach YouTube"),
        (TimeoutError("timed out"), "streams", "cannot reach YouTube (timed out)"),
        (PermissionError(13, "Permission denied"), "download", "cannot save the download"),
        (KeyError("streamingData"), "streams",
         "pytubefix failed (KeyError: 'streamingData'); YouTube may have changed"),
    ],
)  # fmt: skip
def test_download_failures_become_one_line_naming_the_url_and_the_library(
    pytubefix: FakeLibrary, tmp_path: Path, error: BaseException, where: str, expected: str
) -> None:
    pytubefix.error, pytubefix.error_at = error, where
    with pytest.raises(UnmixError) as caught:
        YouTubeSource().songs(URL, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"cannot download '{URL}' with pytubefix: ")
    assert expected in message
    assert "\n" not in message


def test_a_video_without_an_audio_stream_or_data_is_a_clear_error(pytubefix: FakeLibrary, tmp_path: Path) -> None:
    pytubefix.has_audio = False
    with pytest.raises(UnmixError, match="the video has no audio-only stream"):
        YouTubeSource().songs(URL, tmp_path)
    pytubefix.has_audio, pytubefix.write_file = True, False
    with pytest.raises(UnmixError, match="the download produced no data"):
        YouTubeSource().songs(URL, tmp_path)


def test_an_untitled_video_is_named_after_its_id(pytubefix: FakeLibrary, tmp_path: Path) -> None:
    pytubefix.title = "  "
    assert YouTubeSource().songs(URL, tmp_path)[0].name == VIDEO_ID


def test_the_real_pytubefix_exceptions_are_recognised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fakes above mirror pytubefix's class names; check them against the real ones when installed."""
    real = pytest.importorskip("pytubefix")
    exceptions = pytest.importorskip("pytubefix.exceptions")
    cases = [
        (exceptions.VideoPrivate(VIDEO_ID), "the video is unavailable"),
        (exceptions.VideoRemovedByUploader(VIDEO_ID), "the video is unavailable"),
        (exceptions.RegexMatchError("caller", "pattern"), "cannot read YouTube's page"),
    ]
    for error, expected in cases:

        def raising(url: str, _error: BaseException = error) -> None:
            raise _error

        monkeypatch.setattr(real, "YouTube", raising)
        with pytest.raises(UnmixError, match=expected):
            YouTubeSource().songs(URL, tmp_path)
