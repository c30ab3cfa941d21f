"""`unmix plugin new`: each kind of template becomes a package whose own tests pass once pip installs it.

The generated packages are installed for real (`pip --python VENV install -e`) into one fresh
virtual environment that sees this interpreter's unmix through a .pth file (as
tests/torch/test_examples.py does), and each package's own pytest runs there. The fast tests
render the templates in this process and check the command's one-line refusals.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, clean_environment, run_unmix, venv_seeing_unmix
from unmix.cli.plugin_command import KINDS, create_plugin
from unmix.core.errors import UnmixError

FILES = {
    "model": {"src/unmix_new_model/network.py"},
    "source": {"src/unmix_new_source/source.py"},
    "writer": {"src/unmix_new_writer/writer.py"},
    "dataset": {"src/unmix_new_dataset/layout.py"},
}
REGISTERS = {
    "model": {"models": ["torch:new-model"]},
    "source": {"sources": ["new-source"]},
    "writer": {"exporters": ["new-writer"]},
    "dataset": {"datasets": ["new-dataset"]},
}


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                            env=clean_environment(OMP_NUM_THREADS="1"))
    assert result.returncode == 0, f"{command}\n{result.stdout[-4000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_kind_renders_a_whole_package(tmp_path, kind):
    folder = tmp_path / f"unmix-new-{kind}"
    written = create_plugin(f"new-{kind}", kind, folder)
    relative = {path.relative_to(folder).as_posix() for path in written}
    module = f"unmix_new_{kind}"
    assert relative == {"pyproject.toml", "README.md", "tests/test_plugin.py", f"src/{module}/__init__.py",
                        f"src/{module}/plugin.py", *FILES[kind]}
    for path in written:
        text = path.read_text()
        assert not re.search(r"\$\{?[A-Za-z_]", text), f"{path.name} keeps a template field"
        if path.suffix == ".py":
            compile(text, str(path), "exec")
    assert f'new-{kind} = "{module}.plugin"' in (folder / "pyproject.toml").read_text()


def test_an_existing_folder_is_kept_unless_forced(tmp_path):
    folder = tmp_path / "unmix-mine"
    (folder / "tests").mkdir(parents=True)
    (folder / "tests" / "test_plugin.py").write_text("old")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UnmixError, match="'.*unmix-mine' already exists; choose another --output, or pass --force"):
        create_plugin("mine", "source", folder)
    assert (folder / "tests" / "test_plugin.py").read_text() == "old"
    create_plugin("mine", "source", folder, force=True)
    assert "check_source" in (folder / "tests" / "test_plugin.py").read_text()
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_name_an_installed_plugin_registers_is_refused(tmp_path):
    with pytest.raises(UnmixError, match="'torch:hourglass' is already registered by plugin 'torch'"):
        create_plugin("hourglass", "model", tmp_path / "unmix-hourglass")
    with pytest.raises(UnmixError, match="'wav' is already registered by plugin 'sources'"):
        create_plugin("wav", "writer", tmp_path / "unmix-wav")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_the_command_refuses_in_one_line(tmp_path):
    assert_one_line_error(run_unmix("plugin", "new", "My_Model", "--kind", "model", cwd=tmp_path),
                          "NAME 'My_Model' is not a valid plugin name", "unmix plugin new --help")
    assert_one_line_error(run_unmix("plugin", "new", "2tone", "--kind", "source", cwd=tmp_path), "NAME '2tone'")
    assert_one_line_error(run_unmix("plugin", "new", "tone", "--kind", "mixer", cwd=tmp_path), "'mixer' is not one of")
    (tmp_path / "unmix-tone").mkdir()
    assert_one_line_error(run_unmix("plugin", "new", "tone", "--kind", "source", cwd=tmp_path),
                          "'unmix-tone' already exists", "--force")
    assert not any((tmp_path / "unmix-tone").iterdir())


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One package per kind, made by the real command in a subprocess."""
    folder = tmp_path_factory.mktemp("generated")
    made = {}
    for kind in KINDS:
        result = run_unmix("plugin", "new", f"new-{kind}", "--kind", kind, cwd=folder)
        assert result.returncode == 0, result.stderr
        assert f"created unmix-new-{kind}, a {kind} plugin, in unmix-new-{kind}" in result.stdout
        made[kind] = folder / f"unmix-new-{kind}"
    return made


@pytest.fixture(scope="module")
def python(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtual environment with every generated package installed editable by pip."""
    editable = [argument for package in packages.values() for argument in ("-e", package)]
    return venv_seeing_unmix(tmp_path_factory.mktemp("plugins-venv"), *editable)


@pytest.mark.slow
def test_unmix_plugins_lists_every_generated_plugin(python):
    listing = json.loads(run(python, "-m", "unmix.cli", "plugins", "--json").stdout)
    assert listing["failures"] == [] and listing["conflicts"] == []
    plugins = {plugin["name"]: plugin for plugin in listing["plugins"]}
    for kind, registers in REGISTERS.items():
        assert plugins[f"new-{kind}"]["distribution"] == f"unmix-new-{kind}"
        assert plugins[f"new-{kind}"]["registers"] == registers


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_the_generated_package_passes_its_own_tests(python, packages, kind):
    result = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=packages[kind])
    assert re.search(r"\d+ passed", result.stdout) and "warning" not in result.stdout.lower(), result.stdout
