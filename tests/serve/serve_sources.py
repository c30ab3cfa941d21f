"""Source plugins for the serve tests, registered in the test process: links the worker fetches.

`gate://NAME` holds the worker until the test opens the gate, so a test can see jobs wait their
turn; `broken://` yields a file that is not audio; `crash://` fails as a buggy plugin would.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import soundfile

from unmix.core.errors import UnmixError
from unmix.core.hookspecs import hookimpl
from unmix.core.interfaces import SongInput

GATE = threading.Event()
ENTERED = threading.Event()
PLUGIN = "serve-test-sources"


class GateSource:
    name = "serve-gate"

    def matches(self, uri: str) -> bool:
        return uri.startswith("gate://")

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        ENTERED.set()
        if not GATE.wait(timeout=30):
            raise UnmixError("the test never opened the gate")
        name = uri.removeprefix("gate://") or "gated"
        path = temp_folder / f"{name}.wav"
        time = np.arange(8000) / 8000
        soundfile.write(path, 0.3 * np.sin(2 * np.pi * 330 * time), 8000)
        return [SongInput(name=name, path=path)]


class BrokenSource:
    name = "serve-broken"

    def matches(self, uri: str) -> bool:
        return uri.startswith("broken://")

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        path = temp_folder / "broken.wav"
        path.write_bytes(b"this is not a wav file, whatever its name says\n" * 20)
        return [SongInput(name="broken", path=path)]


class CrashSource:
    name = "serve-crash"

    def matches(self, uri: str) -> bool:
        return uri.startswith("crash://")

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        raise RuntimeError("the plugin has a bug\nand a second line")


@hookimpl
def register_sources(register) -> None:
    register("serve-gate", GateSource())
    register("serve-broken", BrokenSource())
    register("serve-crash", CrashSource())


def register_test_sources() -> None:
    import sys

    from unmix.core.plugins import plugin_manager

    manager = plugin_manager()
    if PLUGIN not in manager.infos:
        manager.register(sys.modules[__name__], PLUGIN)
