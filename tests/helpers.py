"""Shared test helpers: running the real `unmix` command in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
CONFIGURATIONS = REPOSITORY / "configurations"


def unmix_executable() -> str:
    candidate = Path(sys.executable).parent / "unmix"
    if not candidate.exists():
        pytest.fail(f"the unmix command is not installed next to {sys.executable}; install packages/unmix-cli")
    return str(candidate)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_environment(**extra: str) -> dict[str, str]:
    """The current environment without UNMIX_* variables, so tests do not depend on the caller's."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("UNMIX_")}
    environment.update(extra)
    return environment


def run_unmix(*arguments: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [unmix_executable(), *arguments],
        cwd=cwd,
        env=env if env is not None else clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A user mistake ends with exit code 2 and one line on stderr, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("unmix: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def ctrl_c_reaches_the_child() -> None:
    """`preexec_fn` for a subprocess that a test interrupts: a shell that runs the suite in the background
    (as CI may) starts it with SIGINT ignored, and a child inherits that; from a terminal, Ctrl-C finds
    the command at its default disposition, which this restores."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def build_network(model: str, options: dict, input_shape: tuple[int, int, int]):
    """The bare network of a registered kit model ("torch:hourglass"), built from `options` as training would."""
    from unmix.core.plugins import plugin_manager

    registered = plugin_manager().registry("models").get(model)
    chosen = registered.read_options(options, input_shape)
    chosen.pop("mixed_precision")
    return registered.network_factory()(chosen, input_shape)


def write_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def venv_seeing_unmix(folder: Path, *pip_install: str | Path) -> Path:
    """The interpreter of a new virtual environment where pip installs `pip_install` (packages, `-e` folders).

    The environment sees unmix and its dependencies through a .pth file that adds this interpreter's
    site-packages as a site directory, so the editable unmix installs (themselves .pth files) work
    there without reinstalling anything; `venv --system-site-packages` would expose the base
    interpreter's packages instead, not this environment's.
    """
    def run(*command: str | Path, timeout: float = 300) -> str:
        result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                                env=clean_environment())
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    import importlib.util
    import sysconfig

    run(sys.executable, "-m", "venv", "--without-pip", folder / "venv")
    interpreter = folder / "venv" / ("Scripts" if os.name == "nt" else "bin") / "python"
    site = Path(run(interpreter, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (site / "_unmix_parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    # Without hatchling here, pip builds in an isolated environment, fetching hatchling from the package index.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    run(sys.executable, "-m", "pip", "--python", interpreter, "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", *isolation, *pip_install)
    return interpreter
