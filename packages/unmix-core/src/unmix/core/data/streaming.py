"""Reading audio block by block, and resampling it block by block.

Prediction streams songs from decoder to encoder so that memory does not grow with the song's
length. soundfile reads what libsndfile knows (wav, flac, ogg, mp3 in libsndfile >= 1.1); ffmpeg,
through a pipe of raw float32 samples, reads everything else (m4a, mp4, aif variants, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np

from unmix.core.data import ffmpeg
from unmix.core.data.audio import check_finite
from unmix.core.errors import AudioError

# Formats whose header states the exact frame count: zero frames there means a header and no audio,
# which ffmpeg cannot read either.
_EXACT_LENGTH_FORMATS = {"WAV", "WAVEX", "W64", "RF64", "FLAC", "AIFF", "CAF"}


@attrs.frozen
class StreamInfo:
    sample_rate: int
    channels: int
    frames: int | None
    """Known up front for files soundfile reads; None for ffmpeg streams (counted while reading)."""


class AudioReader:
    """Blocks of float32 (channels, samples) at the file's own rate and channel count.

    Every block is checked for NaN and infinite samples as it is read, so prediction refuses such
    a file with the sample's absolute position instead of writing stems full of NaN.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            what = "is a folder" if self.path.is_dir() else "does not exist"
            raise AudioError(f"audio file '{self.path}' {what}; give the path of an audio file")
        if self.path.stat().st_size == 0:
            raise AudioError(f"'{self.path}' is empty (0 bytes); give a complete audio file")
        self._soundfile = self._open_soundfile()
        if self._soundfile is not None:
            self.info = StreamInfo(self._soundfile.samplerate, self._soundfile.channels, self._soundfile.frames)
        else:
            rate, channels = _probe(self.path)
            self.info = StreamInfo(rate, channels, None)

    def _open_soundfile(self):  # noqa: ANN202 - soundfile is imported lazily
        import soundfile

        try:
            handle = soundfile.SoundFile(str(self.path))
        except Exception:  # libsndfile cannot read it: ffmpeg may
            return None
        if handle.frames <= 0:
            file_format = handle.format
            handle.close()
            if file_format in _EXACT_LENGTH_FORMATS:
                raise AudioError(f"'{self.path}' holds no audio samples (only a header); give a complete audio file")
            return None
        return handle

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        read = self._soundfile_blocks if self._soundfile is not None else self._ffmpeg_blocks
        blocks = read(block_frames)
        position = 0
        try:
            for block in blocks:
                check_finite(block, str(self.path), first_frame=position)
                position += block.shape[1]
                yield block
        finally:
            blocks.close()

    def _soundfile_blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        handle = self._soundfile
        try:
            while True:
                block = handle.read(block_frames, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    return
                yield np.ascontiguousarray(block.T)
        except RuntimeError as error:
            raise AudioError(f"cannot decode '{self.path}': {error}; the file may be truncated") from None
        finally:
            handle.close()

    def _ffmpeg_blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        produced = 0
        with ffmpeg.RawDecoder(self.path, 0, self.info.sample_rate, self.info.channels) as decoder:
            for block in decoder.blocks(block_frames):
                produced += block.shape[1]
                yield block
        if produced == 0:
            reason = decoder.complaint() or "no audio"
            raise AudioError(f"cannot decode '{self.path}' ({reason}); convert it to wav, flac or mp3")

    def close(self) -> None:
        if self._soundfile is not None and not self._soundfile.closed:
            self._soundfile.close()


def check_readable(path: Path) -> StreamInfo:
    """Open and close `path` as `AudioReader` would: a missing, empty or undecodable song is refused
    before a model is loaded for it."""
    reader = AudioReader(path)
    reader.close()
    return reader.info


def _probe(path: Path) -> tuple[int, int]:
    """Rate and channels of the first audio stream, from ffprobe."""
    if not ffmpeg.installed("ffprobe", "ffmpeg"):
        raise AudioError(f"cannot read '{path}' without ffmpeg; install ffmpeg (e.g. apt-get install ffmpeg)")
    try:
        found = ffmpeg.probe(path, 0)
    except ffmpeg.FfmpegError as error:
        reason = ffmpeg.error_line(error.stderr, path) or "it has no audio stream"
        raise AudioError(f"'{path}' is not audio that unmix can read, or is truncated or corrupt ({reason}); "
                         "replace it or convert it to wav, flac or mp3") from None
    return found.sample_rate, found.channels


class Resampler:
    """A streaming resampler (soxr) that passes blocks through untouched when the rates agree."""

    def __init__(self, from_rate: int, to_rate: int, channels: int) -> None:
        self.identity = from_rate == to_rate
        if not self.identity:
            import soxr

            self._stream = soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32", quality="HQ")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self.identity:
            return block
        resampled = self._stream.resample_chunk(np.ascontiguousarray(block.T), last=last)
        return np.ascontiguousarray(resampled.T)
