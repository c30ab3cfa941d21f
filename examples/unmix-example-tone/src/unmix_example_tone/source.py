"""`ToneSource`: songs made up on the spot, for trying a model without any audio files.

`tone://440` is five seconds of a 440 Hz sine at 22050 Hz; `tone://220+330+440?seconds=2&rate=8000`
is a chord of three, two seconds long, at 8 kHz. The source writes a wav file into the temporary
folder it is given, because unmix separates files: every source, local or remote, hands over
local files (`unmix.core.interfaces.SongInput`). A malformed URI is one `UnmixError` line that
says what a good one looks like.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from unmix.core.errors import UnmixError
from unmix.core.interfaces import SongInput

SCHEME = "tone"
EXAMPLE = "tone://440 or tone://220+330?seconds=2&rate=8000"
DEFAULT_SECONDS = 5.0
DEFAULT_RATE = 22050
AMPLITUDE = 0.5


class ToneSource:
    name = SCHEME

    def matches(self, uri: str) -> bool:
        return uri.lower().startswith(f"{SCHEME}://")

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        import numpy as np
        import soundfile

        frequencies, seconds, rate = parse(uri)
        time = np.arange(int(seconds * rate)) / rate
        signal = sum(np.sin(2 * np.pi * frequency * time) for frequency in frequencies)
        signal = AMPLITUDE * signal / len(frequencies)
        name = "tone-" + "+".join(f"{frequency:g}" for frequency in frequencies)
        path = Path(temp_folder) / f"{name}.wav"
        soundfile.write(path, signal.astype(np.float32), rate, subtype="FLOAT")
        return [SongInput(name=name, path=path)]


def parse(uri: str) -> tuple[list[float], float, int]:
    """(frequencies in Hz, length in seconds, sample rate) of a tone:// URI."""
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    try:
        frequencies = [float(text) for text in parts.netloc.split("+")]
        seconds = float(query.get("seconds", [DEFAULT_SECONDS])[0])
        rate = int(query.get("rate", [DEFAULT_RATE])[0])
    except ValueError:
        raise UnmixError(f"'{uri}' is not a tone: write {EXAMPLE}") from None
    if rate < 1000 or not 0 < seconds <= 600:
        raise UnmixError(f"'{uri}': the rate must be at least 1000 Hz and the length 0 to 600 s ({EXAMPLE})")
    if not all(0 < frequency < rate / 2 for frequency in frequencies):
        raise UnmixError(f"'{uri}': every frequency must lie between 0 and half the rate, {rate / 2:g} Hz")
    return frequencies, seconds, rate
