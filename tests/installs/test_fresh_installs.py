"""Every package combination README.md documents, pip-installed into a fresh virtual environment.

The install lines are read out of README.md's "Packages" section, so what a new user copies is what
runs here. Each combination then does what it should support (help, plugins, a tiny training with
its plots, a prediction with the trained run) and, for what it lacks, ends in one `unmix: error:`
line naming the package to install. This is what catches an import that no package declares: the
test suite's own environment has every package and every extra installed at once.

Each environment is built once per module (installing takes most of the time) and its checks run
in one test function.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import soundfile

from tests.bad_inputs.catalogue import assert_clean_failure, assert_untouched, snapshot
from tests.helpers import REPOSITORY, clean_environment, run_unmix
from tests.training_fixtures import write_configuration, write_seed_collection

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

README = REPOSITORY / "README.md"
CORE_CLI = ("packages/unmix-core", "packages/unmix-cli")
WITH_SOURCES = (*CORE_CLI, "packages/unmix-sources")
TF_CPU = "packages/unmix-tf[cpu]"
TORCH = "packages/unmix-torch"
ONNX = "packages/unmix-onnx"
RAY = "packages/unmix-ray"
SERVE = "packages/unmix-serve"
WITHOUT_EXTRA = {TF_CPU: "packages/unmix-tf"}
INSTALL_SECONDS = 900
UNMIX_SECONDS = 300
TINY_BAND_HOURGLASS = {"bands": 16, "stacks": 2, "filters": 8}


def documented_install_lines() -> list[str]:
    """The `pip install` lines of the fenced block in README.md's "Packages" section."""
    section = README.read_text().split("\n## Packages\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.startswith("pip install ")]


def documented_install(*packages: str) -> list[str]:
    """The README's install line for exactly these packages, as arguments for pip."""
    for line in documented_install_lines():
        arguments = shlex.split(line)
        if [arguments[i + 1] for i, word in enumerate(arguments) if word == "-e"] == list(packages):
            return arguments[2:]
    raise AssertionError(f"README.md's Packages section has no `pip install` line for {packages}")


class FreshInstall:
    """A virtual environment made by `python -m venv` and one README install line, nothing else."""

    def __init__(self, folder: Path, pip_arguments: list[str]) -> None:
        self.folder = folder
        self.training_log = ""
        self.environment = clean_environment(OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
        self.environment.pop("PYTHONPATH", None)
        self.environment.pop("VIRTUAL_ENV", None)
        subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True, timeout=120)
        python = folder / "venv" / "bin" / "python"
        installed = subprocess.run([str(python), "-m", "pip", "install", *pip_arguments], cwd=REPOSITORY,
                                   env=self.environment, capture_output=True, text=True, timeout=INSTALL_SECONDS)
        assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    def unmix(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.folder / "venv" / "bin" / "unmix"), *arguments], cwd=self.folder,
                              env=self.environment, capture_output=True, text=True, timeout=UNMIX_SECONDS)


def fresh_install(factory: pytest.TempPathFactory, name: str, pip_arguments: list[str]) -> FreshInstall:
    return FreshInstall(factory.mktemp(name), pip_arguments)


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def tiny_configuration(folder: Path, backend: str, tensorboard: bool = False) -> Path:
    """Two epochs of a small band hourglass on eight one-second songs: seconds on any backend."""
    collection = folder / "collection"
    if not collection.exists():
        write_seed_collection(collection, songs=8, seconds=1.0)
    base = write_configuration(folder / f"tiny-{backend}.jsonc", collection, "band-hourglass", epochs=2,
                               backend=backend, **TINY_BAND_HOURGLASS)
    settings = json.loads(base.read_text().split("\n", 1)[1])
    settings["training"]["optimizer"]["lr"] = 0.001
    settings["training"]["limit_items_per_song"] = 4
    settings["training"]["callbacks"]["tensorboard"]["enabled"] = tensorboard
    base.write_text(json.dumps(settings))
    return base


def train_to_completion(install: FreshInstall, backend: str, tensorboard: bool = False) -> Path:
    """A finished run folder, plots included (matplotlib is a dependency nobody sees missing elsewhere)."""
    configuration = tiny_configuration(install.folder, backend, tensorboard)
    trained = install.unmix("train", str(configuration), "--workingdir", str(install.folder))
    run = Path(assert_ok(trained).strip().splitlines()[-1].split(": ", 1)[1])
    assert (run / "plots" / "loss.png").stat().st_size > 0
    install.training_log = trained.stdout + trained.stderr
    return run


def assert_predicts(install: FreshInstall, run: Path) -> None:
    song = install.folder / "collection" / "song00" / "vocals_song00.wav"
    output = install.folder / "separated"
    assert_ok(install.unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(output)))
    vocals, rate = soundfile.read(output / "vocals_song00_vocals.wav")
    assert rate == 8000 and len(vocals) == soundfile.info(song).frames


def assert_cannot_train(install: FreshInstall, backend: str, *fragments: str) -> None:
    """Training a backend that is not installed: one line naming what to install, and no run folder."""
    configuration = tiny_configuration(install.folder, backend)
    working_directory = install.folder / "refused"
    assert_clean_failure(install.unmix("train", str(configuration), "--workingdir", str(working_directory)),
                         *fragments)
    assert not working_directory.exists()


def assert_cannot_predict(install: FreshInstall, run: Path, *fragments: str) -> None:
    before = snapshot(run)
    song = install.folder / "collection" / "song00" / "vocals_song00.wav"
    output = install.folder / "refused-separation"
    assert_clean_failure(install.unmix("predict", "--run-folder", str(run), "--song", str(song), "--output",
                                  str(output)), *fragments)
    assert_untouched(before, run)
    assert not output.exists()


def assert_help_and_plugins(install: FreshInstall, plugins: set[str]) -> None:
    assert "datasets" in assert_ok(install.unmix("--help"))
    described = json.loads(assert_ok(install.unmix("plugins", "--json")))["plugins"]
    assert {plugin["name"] for plugin in described} == plugins


@pytest.fixture(scope="module")
def with_tf(tmp_path_factory) -> FreshInstall:
    return fresh_install(tmp_path_factory, "tf-cpu", documented_install(*WITH_SOURCES, TF_CPU))


@pytest.fixture(scope="module")
def with_torch(tmp_path_factory) -> FreshInstall:
    return fresh_install(tmp_path_factory, "torch", documented_install(*WITH_SOURCES, TORCH))


@pytest.fixture(scope="module")
def tf_run(with_tf) -> Path:
    return train_to_completion(with_tf, "tensorflow")


@pytest.fixture(scope="module")
def torch_run(with_torch) -> Path:
    """With TensorBoard logs asked for: unmix-torch leaves the tensorboard package to an extra."""
    return train_to_completion(with_torch, "torch", tensorboard=True)


def test_core_and_cli_alone(tmp_path_factory):
    install = fresh_install(tmp_path_factory, "core-cli", documented_install(*CORE_CLI))
    assert_help_and_plugins(install, {"core"})
    destination = install.folder / "demo"
    assert_clean_failure(install.unmix("datasets", "demo", str(destination)), "unmix datasets demo", "unmix-sources")
    assert not destination.exists()
    assert_cannot_train(install, "tensorflow", "unmix-tf[cpu]")
    assert_cannot_train(install, "torch", "unmix-torch")


def test_core_cli_and_sources(tmp_path_factory, tf_run, torch_run):
    install = fresh_install(tmp_path_factory, "sources", documented_install(*WITH_SOURCES))
    assert_help_and_plugins(install, {"core", "sources"})
    assert_clean_failure(install.unmix("datasets", "demo", str(install.folder / "demo")), "music21",
                    "unmix-sources[demo]")
    assert_cannot_train(install, "tensorflow", "unmix-tf[cpu]")
    assert_cannot_train(install, "torch", "unmix-torch")
    assert_cannot_predict(install, tf_run, "unmix-tf[cpu]")
    assert_cannot_predict(install, torch_run, "unmix-torch")


def test_with_the_tensorflow_backend(with_tf, tf_run, torch_run):
    assert_help_and_plugins(with_tf, {"core", "sources", "tf"})
    assert_predicts(with_tf, tf_run)
    assert_cannot_train(with_tf, "torch", "unmix-torch")
    assert_cannot_predict(with_tf, torch_run, "unmix-torch")


def test_with_the_torch_backend(with_torch, tf_run, torch_run):
    assert_help_and_plugins(with_torch, {"core", "sources", "torch"})
    assert "train-ddp" in assert_ok(with_torch.unmix("--help"))
    assert "pip install tensorboard" in with_torch.training_log
    assert not list(torch_run.rglob("events.out.tfevents.*"))
    assert_predicts(with_torch, torch_run)
    assert_cannot_train(with_torch, "tensorflow", "unmix-tf[cpu]")
    assert_cannot_predict(with_torch, tf_run, "unmix-tf[cpu]")


def test_onnx_runtime_separates_without_a_framework(tmp_path_factory, with_torch, torch_run):
    """A run exported where the framework is (here, the suite's environment) separates where it is not."""
    install = fresh_install(tmp_path_factory, "onnx", documented_install(*WITH_SOURCES, ONNX))
    assert_help_and_plugins(install, {"core", "sources", "onnx"})
    python = install.folder / "venv" / "bin" / "python"
    for framework in ("torch", "tensorflow", "keras"):
        imported = subprocess.run([str(python), "-c", f"import {framework}"], capture_output=True,
                                  env=install.environment)
        assert imported.returncode != 0, f"{framework} is installed by {ONNX}'s README line"

    model = install.folder / "band-hourglass.onnx"
    assert_ok(run_unmix("export", "--run-folder", str(torch_run), "--output", str(model), timeout=UNMIX_SECONDS))
    song = with_torch.folder / "collection" / "song00" / "vocals_song00.wav"
    output = install.folder / "separated"
    assert_ok(install.unmix("predict", "--model", str(model), "--song", str(song), "--output", str(output)))
    vocals, rate = soundfile.read(output / "vocals_song00_vocals.wav")
    assert rate == 8000 and len(vocals) == soundfile.info(song).frames
    assert_clean_failure(install.unmix("export", "--run-folder", str(torch_run), "--output",
                                       str(install.folder / "again.onnx")), "unmix-torch")


def test_a_catalogue_on_ray_separates_with_an_export_alone(tmp_path_factory, with_torch, torch_run):
    """What a cluster worker needs: unmix-ray and unmix-onnx, no framework; here on a local Ray."""
    install = fresh_install(tmp_path_factory, "ray", documented_install(*WITH_SOURCES, ONNX, RAY))
    assert_help_and_plugins(install, {"core", "sources", "onnx", "ray"})
    model = install.folder / "band-hourglass.onnx"
    assert_ok(run_unmix("export", "--run-folder", str(torch_run), "--output", str(model), timeout=UNMIX_SECONDS))
    songs = with_torch.folder / "collection" / "song01"
    output = install.folder / "catalogue"
    assert_ok(install.unmix("catalogue", str(songs), "--model", str(model), "--output", str(output), "--ray", "local",
                            "--workers", "1"))
    assert sorted(path.name for path in output.glob("*.wav")) == [
        "rest_song01_rest.wav", "rest_song01_vocals.wav", "vocals_song01_rest.wav", "vocals_song01_vocals.wav"]
    python = install.folder / "venv" / "bin" / "python"
    imported = subprocess.run([str(python), "-c", "import torch"], capture_output=True, env=install.environment)
    assert imported.returncode != 0, "torch is installed by the README line for unmix-ray"


def test_the_web_app_serves_its_pages_and_api(tmp_path_factory):
    install = fresh_install(tmp_path_factory, "serve", documented_install(*WITH_SOURCES, SERVE))
    assert_help_and_plugins(install, {"core", "sources", "serve"})
    runs = install.folder / "runs"
    runs.mkdir()
    command = [str(install.folder / "venv" / "bin" / "unmix"), "serve", "--runs", str(runs), "--jobs",
               str(install.folder / "jobs"), "--port", "0"]
    server = subprocess.Popen(command, cwd=install.folder, env=install.environment, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        address = re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline())
        assert address, server.stderr.read() if server.poll() is not None else "no address printed"
        with urllib.request.urlopen(address.group(0) + "api/runs", timeout=30) as response:
            assert json.load(response) == {"runs": []}
        with urllib.request.urlopen(address.group(0), timeout=30) as response:
            assert "<html" in response.read().decode().lower()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_tensorflow_backend_without_its_extra_names_the_extra(tmp_path_factory):
    """unmix-tf alone installs Keras without TensorFlow: the mistake the README warns about."""
    pip_arguments = [WITHOUT_EXTRA.get(word, word) for word in documented_install(*WITH_SOURCES, TF_CPU)]
    install = fresh_install(tmp_path_factory, "tf-no-extra", pip_arguments)
    assert_help_and_plugins(install, {"core", "sources", "tf"})
    assert_cannot_train(install, "tensorflow", "unmix-tf[cpu]", "unmix-tf[gpu]")


def test_readme_documents_each_combination_once():
    lines = documented_install_lines()
    assert len(lines) == len(set(lines)) == 7, lines
    assert all(line.startswith("pip install -c constraints.txt ") for line in lines), lines
