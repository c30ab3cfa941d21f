"""ffmpeg and ffprobe: the decoders for what libsndfile cannot read (m4a, mp4, opus, multi-stream files).

Loading a whole song, prediction's streaming reader and the cache's streaming writer all decode
through here, so they build the same command lines, read the same float32 output and quote
ffmpeg's complaint the same way. The callers word the messages, because only they know what the
user was doing; this module raises `FfmpegError`, which is not shown to users as it is.
"""

from __future__ import annotations

import collections
import io
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import attrs
import numpy as np

__all__ = ["FfmpegError", "RawDecoder", "StreamFormat", "decode_file", "error_line", "installed", "probe"]

# Lines of stderr kept while streaming: enough for the complaint, bounded whatever ffmpeg writes.
_STDERR_LINES = 20
_FLOAT32_BYTES = 4


class FfmpegError(Exception):
    """ffmpeg or ffprobe could not read a file; the caller turns this into its own `AudioError`.

    `missing_stream` says the file was read but has no (such) audio stream, which deserves a
    different remedy than a corrupt file.
    """

    def __init__(self, stderr: str, returncode: int, missing_stream: bool) -> None:
        super().__init__(stderr, returncode, missing_stream)
        self.stderr = stderr
        self.returncode = returncode
        self.missing_stream = missing_stream


@attrs.frozen
class StreamFormat:
    sample_rate: int
    channels: int


def installed(*tools: str) -> bool:
    """Whether every one of `tools` (ffmpeg, ffprobe) is on PATH, checked before a message can blame the file."""
    return all(shutil.which(tool) is not None for tool in tools)


def error_line(text: str, path: Path | None = None) -> str:
    """A decoder's complaint as a short clause for a one-line message ("" when it said nothing).

    ffmpeg and libsndfile put the actual complaint on the last line; given `path`, the file name
    they repeat is dropped, since the message already shows it.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    if path is not None:
        for noise in (f"Error opening {str(path)!r}: ", f"Error opening {str(path)!r}", f"{path}: "):
            line = line.replace(noise, "")
    return line.strip().rstrip(".")


def probe(path: Path, stream: int) -> StreamFormat:
    """Rate and channels of the `stream`-th audio stream (0-based), from ffprobe.

    Raises `FfmpegError` when ffprobe cannot read the file or it has no such stream.
    """
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", f"a:{stream}", "-show_entries", "stream=sample_rate,channels",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        found = json.loads(result.stdout)["streams"]
        if found:
            return StreamFormat(int(found[0]["sample_rate"]), int(found[0]["channels"]))
    except (ValueError, KeyError, TypeError):
        raise FfmpegError(result.stderr, result.returncode, missing_stream=False) from None
    raise FfmpegError(result.stderr, result.returncode, missing_stream=True)


def decode_file(path: Path, stream: int | None = None) -> tuple[np.ndarray | None, int]:
    """Decode a whole audio stream into float32 (channels, frames) at its native rate and layout.

    ffmpeg writes an in-memory WAV rather than raw f32le: its header carries the rate and channel
    count, so one pass replaces an ffprobe call. ffmpeg neither resamples nor downmixes, so the
    samples match what soundfile would give. `stream` None takes ffmpeg's default audio stream.
    Returns (None, 0) when ffmpeg wrote a header but no usable data (a file truncated right after
    its header). Raises `FfmpegError` when ffmpeg fails, and OSError when it cannot be started.
    """
    import soundfile

    selection = [] if stream is None else ["-map", f"0:a:{stream}"]
    command = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(path), *selection,
        "-vn", "-sn", "-dn", "-map_metadata", "-1",
        "-f", "wav", "-c:a", "pcm_f32le", "-",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        stderr = result.stderr.decode("utf-8", errors="replace")
        missing = "does not contain any stream" in stderr or "matches no streams" in stderr
        raise FfmpegError(stderr, result.returncode, missing_stream=missing)
    try:
        data, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError, soundfile.SoundFileError):
        return None, 0
    return np.ascontiguousarray(data.T), int(rate)


class RawDecoder:
    """An ffmpeg process streaming one audio stream as float32 blocks, so memory stays bounded.

    Use it as a context manager: leaving early (an error, a reader that stops) kills the process.
    A thread drains stderr, keeping its last lines, so a file full of bad frames cannot fill the
    pipe and stall the decoder.
    """

    def __init__(self, path: Path, stream: int, sample_rate: int, channels: int) -> None:
        command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:a:{stream}", "-f", "f32le",
                   "-ac", str(channels), "-ar", str(sample_rate), "-"]
        self._channels = channels
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=_STDERR_LINES)
        self._drain = threading.Thread(target=self._stderr.extend, args=(self._process.stderr,), daemon=True)
        self._drain.start()

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """(channels, frames) blocks of at most `block_frames` frames until ffmpeg has written everything."""
        frame_bytes = self._channels * _FLOAT32_BYTES
        assert self._process.stdout is not None
        while data := self._process.stdout.read(block_frames * frame_bytes):
            usable = len(data) - len(data) % frame_bytes
            block = np.frombuffer(data[:usable], dtype=np.float32).reshape(-1, self._channels).T
            yield np.ascontiguousarray(block)
        self._process.wait()

    def complaint(self) -> str:
        """ffmpeg's last error line ("" when it said nothing); complete once the decoder is closed."""
        return error_line(b"".join(self._stderr).decode("utf-8", errors="replace"))

    def __enter__(self) -> RawDecoder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._drain.join()
        for pipe in (self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()
