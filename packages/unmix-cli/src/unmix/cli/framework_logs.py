"""Keeping TensorFlow's start-up chatter off the user's terminal.

Importing TensorFlow prints lines that say nothing about the user's work ("oneDNN custom
operations are on", "This TensorFlow binary is optimized ...", absl's "All log messages before
absl::InitializeLog() ..."). Some of them ignore TF_CPP_MIN_LOG_LEVEL, because the C++ libraries
log through absl before anything configured it, so the only reliable place to drop them is the
import itself: while `tensorflow` is first imported, stderr (file descriptor 2, where C++ writes)
goes to a temporary file, and afterwards every line that is not start-up noise is written out.
`unmix --verbose` or UNMIX_DEBUG=1 leave all of this alone.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# Whichever of these is imported first loads TensorFlow's libraries.
QUIET_MODULES = ("tensorflow", "keras", "tf_keras")
# TensorFlow's C++ INFO lines are hidden; its warnings and errors still show.
QUIET_LOG_LEVEL = "1"
START_UP_NOISE = re.compile(
    r"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] "  # absl INFO/WARNING: I0000 00:00:1796.1 77 port.cc:153]
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:)"
)


def quiet_framework_logs() -> None:
    """Hide TensorFlow's start-up lines for this process, unless the user set TF_CPP_MIN_LOG_LEVEL to 0."""
    if os.environ.setdefault(LOG_LEVEL_VARIABLE, QUIET_LOG_LEVEL) == "0":
        return
    if "tensorflow" in sys.modules or any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowImport())


def is_start_up_noise(line: str) -> bool:
    return START_UP_NOISE.match(line) is not None


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds TensorFlow (or Keras, which imports it) the ordinary way, with a loader that filters stderr."""

    def __init__(self) -> None:
        self._pending = set(QUIET_MODULES) - set(sys.modules)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._pending:
            return None
        self._pending.discard(fullname)
        if not self._pending:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """The real loader of `tensorflow`, run with start-up noise filtered out of stderr."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _stderr_without_start_up_noise():
            self._loader.exec_module(module)
            _quiet_absl_warnings()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


@contextmanager
def _stderr_without_start_up_noise() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not is_start_up_noise(line)))
            sys.stderr.flush()


def _quiet_absl_warnings() -> None:
    """absl's Python logger warns about things a user cannot act on (e.g. how Keras saves); errors still show."""
    try:
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)
