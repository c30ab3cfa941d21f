"""What every case of the bad-input catalogue checks: the real `unmix` command, one line, no damage.

A case runs `unmix` in a subprocess on a bad input, then asserts the exit code, that stderr holds
exactly one `unmix: error:` line naming the culprit and no traceback, and that every file that
existed before the command is still there with the same bytes, with no temporary file left beside it.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from tests.helpers import clean_environment, run_unmix

__all__ = ["assert_clean_failure", "assert_untouched", "clean_environment", "leftovers", "run_unmix",
           "snapshot", "write_tone"]


def write_tone(path: Path, seconds: float = 1.0, rate: int = 8000, channels: int = 1,
               frequency: float = 440.0) -> Path:
    """A short sine as a real audio file (format from the suffix)."""
    time_axis = np.arange(int(seconds * rate)) / rate
    samples = 0.3 * np.sin(2 * np.pi * frequency * time_axis).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.stack([samples] * channels, axis=1) if channels > 1 else samples, rate)
    return path


def snapshot(*folders: Path) -> dict[Path, str]:
    """Every file under the folders with the sha256 of its bytes."""
    files = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def leftovers(*folders: Path) -> list[Path]:
    """Temporary files a write left behind (`.tmp`, `.part`): a crash or a failure must leave none."""
    return [path for folder in folders for path in Path(folder).rglob("*")
            if path.is_file() and (path.name.endswith(".tmp") or ".unmix.tmp" in path.name or ".part" in path.name)]


def assert_untouched(before: dict[Path, str], *folders: Path) -> None:
    """Nothing that was written before the command was changed, removed, or left a temporary beside it."""
    after = snapshot(*folders)
    changed = [str(path) for path, digest in before.items() if after.get(path) != digest]
    assert not changed, f"damaged or removed: {changed}"
    assert not leftovers(*folders), f"half-written files left: {leftovers(*folders)}"


def assert_clean_failure(result: subprocess.CompletedProcess[str], *fragments: str, exit_code: int = 2) -> str:
    """The command failed with `exit_code` and one `unmix: error:` line holding every fragment; no traceback."""
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("unmix: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]
