"""Run folders: everything one training run produces, in one place that describes itself.

```
runs/<YYYYmmdd-HHMMSS>-<configuration name>/
    configuration.jsonc   merged configuration, read back without inheritance
    environment.json      versions (every unmix package and plugin too), git commit, UNMIX_* variables
                          (secret-looking values redacted)
    logs.txt              what the run printed
    results.csv           one row per epoch (';'-separated, as the seed)
    model.json            backend, model name, input shape and the plugin (distribution, version)
                          that built it: what prediction needs to rebuild it
    state.json            epoch, best value, patience and learning rate: what resuming needs
    weights/              best and last checkpoints
    plots/                loss curves
    predictions/          separated songs
```
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path
from typing import Any, TextIO

import attrs

from unmix.core.config.loader import LoadedConfiguration, load_configuration
from unmix.core.errors import UnmixError
from unmix.core.files import WriteError, write_json_atomically, write_text_atomically
from unmix.core.plugins import ENTRY_POINT_GROUP

CONFIGURATION_FILE = "configuration.jsonc"
LOCK_FILE = ".training.lock"
SECRET_WORDS = ("TOKEN", "SECRET", "KEY", "PASSWORD", "PASS", "CREDENTIAL")
REDACTED = "<redacted>"
DISTRIBUTIONS = ("unmix-core", "unmix-cli", "unmix-sources", "unmix-tf", "unmix-torch", "numpy", "tensorflow",
                 "tensorflow-cpu", "keras", "torch")


class RunFolderError(UnmixError):
    """A folder given as a run folder that is not one, or is missing what a command needs."""


@attrs.frozen
class RunFolder:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def configuration_file(self) -> Path:
        return self.path / CONFIGURATION_FILE

    @property
    def model_file(self) -> Path:
        return self.path / "model.json"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    def exported_model(self, suffix: str) -> Path:
        """Where `unmix export` writes the run's model file of a format by default (".onnx"), and where
        `unmix predict` looks for one to use instead of the training framework."""
        return self.path / "export" / f"{self.name}{suffix}"

    def file(self, name: str) -> Path:
        return self.path / name

    def folder(self, name: str) -> Path:
        folder = self.path / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def load_configuration(self) -> LoadedConfiguration:
        return load_configuration(self.configuration_file, inherit=False)

    def read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunFolderError(f"run folder '{self.path}' has no {path.name}; was its training started?") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunFolderError(f"'{path}' is corrupt (not valid JSON); the run cannot be used as it is") from None

    def write_json(self, path: Path, data: Any) -> None:
        write_json_atomically(path, data)


def create_run_folder(loaded: LoadedConfiguration, working_directory: Path) -> RunFolder:
    """A new, uniquely named run folder holding the merged configuration and the environment."""
    settings = loaded.settings
    parent = Path(working_directory) / settings.environment.output_path
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunFolderError(f"cannot create the runs folder '{parent}': {error.strerror}; choose another "
                             "--workingdir") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = parent / f"{stamp}-{loaded.name}"
    suffix = 1
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            suffix += 1
            path = parent / f"{stamp}-{loaded.name}-{suffix}"
    run = RunFolder(path)
    header = f"// merged from {' -> '.join(str(p) for p in loaded.chain)}\n"
    try:
        write_text_atomically(run.configuration_file, header + json.dumps(loaded.data, indent=2) + "\n")
        run.write_json(run.file("environment.json"), describe_environment(loaded, working_directory))
    except WriteError as error:
        remove_unfinished_run(run)
        raise error.then("run the training again") from None
    return run


def remove_unfinished_run(run: RunFolder) -> None:
    """A run that never finished an epoch has nothing to resume; a half-made folder would only mislead."""
    shutil.rmtree(run.path, ignore_errors=True)


def open_run_folder(path: str | os.PathLike[str]) -> RunFolder:
    """An existing run folder; anything else is a clear error."""
    folder = Path(path)
    if not folder.is_dir():
        raise RunFolderError(f"run folder '{folder}' does not exist; give a folder under runs/")
    run = RunFolder(folder)
    if not run.configuration_file.is_file():
        raise RunFolderError(
            f"'{folder}' is not a run folder (it has no {CONFIGURATION_FILE}); give a folder made by `unmix train`"
        )
    return run


@contextlib.contextmanager
def training_lock(run: RunFolder) -> Iterator[None]:
    """Hold the run folder for this process while it trains.

    Two trainings of one run would both append every epoch to results.csv and overwrite each
    other's checkpoints. The lock is an flock, which the OS drops when the process ends however
    it ends, so a killed training never leaves the run locked; the file holds the pid for the
    message the second process shows.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, one training per run is up to the user
        yield
        return
    try:
        handle = open(run.file(LOCK_FILE), "a+", encoding="utf-8")
    except OSError as error:
        raise RunFolderError(f"cannot lock the run folder '{run.path}': {error.strerror or error}; "
                             "check that it is writable") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(
                f"run folder '{run.path}' is being trained by another unmix process ({_lock_holder(handle)}); "
                "wait for it to finish or stop it, then run this again"
            ) from None
        _record_holder(handle)
        yield
    finally:
        handle.close()


def _record_holder(handle: TextIO) -> None:
    """Only for the message of a second process: a full disk must not stop the training here."""
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()


def _lock_holder(handle: TextIO) -> str:
    handle.seek(0)
    holder = handle.read().strip()
    return f"pid {holder}" if holder.isdigit() else "pid unknown"


def describe_environment(loaded: LoadedConfiguration, working_directory: Path) -> dict[str, Any]:
    """What produced a run, without secrets: only UNMIX_* variables are recorded."""
    versions = {}
    for distribution in DISTRIBUTIONS:
        try:
            versions[distribution] = version(distribution)
        except PackageNotFoundError:
            continue
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "configuration_file": str(loaded.path),
        "configuration_chain": [str(p) for p in loaded.chain],
        "working_directory": str(Path(working_directory).resolve()),
        "user": _user(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "unmix_packages": unmix_distributions(),
        "git": _git_description(loaded.path.parent),
        "variables": recorded_variables(os.environ),
    }


def unmix_distributions() -> dict[str, str]:
    """Every installed unmix package and its version: the unmix-* distributions and every distribution that
    declares an `unmix` plugin, so a run can be reproduced with the same plugins, third-party ones included."""
    found: dict[str, str] = {}
    for distribution in distributions():
        name = distribution.metadata["Name"]
        if not name or name in found:  # a later copy on sys.path is shadowed by the first, as on import
            continue
        declares_plugin = any(entry_point.group == ENTRY_POINT_GROUP for entry_point in distribution.entry_points)
        if declares_plugin or name.lower().replace("_", "-").startswith("unmix-"):
            found[name] = distribution.version
    return dict(sorted(found.items()))


def recorded_variables(environment: Mapping[str, str]) -> dict[str, str]:
    """The UNMIX_* variables, values of secret-looking ones redacted: run folders get shared, tokens must not."""
    return {name: REDACTED if _looks_secret(name) else value
            for name, value in sorted(environment.items()) if name.startswith("UNMIX_")}


def _looks_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _git_description(folder: Path) -> dict[str, str] | None:
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=folder, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
                "dirty": str(bool(git("status", "--porcelain")))}
    except (OSError, subprocess.SubprocessError):
        return None
