"""A run folder says which plugin built its model, and a later command says when that plugin changed.

The run is trained by the real `unmix train` with the gain-mask model installed as the plugin
distribution unmix-gain-test 0.1, so what is recorded comes from real entry-point metadata, as
for a third-party plugin installed with pip.
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import soundfile

import unmix.core
from tests.helpers import run_unmix
from tests.training_fixtures import write_configuration, write_seed_collection
from unmix.core.errors import PluginError
from unmix.core.hookspecs import hookimpl
from unmix.core.plugins import PluginManager

WARNING = "unmix: warning: "


class Tone:
    """A stand-in model class: registries hold whatever a plugin registers."""


class TonePlugin:
    @hookimpl
    def register_models(self, register):
        register("numpy:tone", Tone)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, gain_environment):
    """A finished run trained by `unmix train` in a subprocess, and the environment that finds its plugin."""
    folder = tmp_path_factory.mktemp("provenance")
    collection = write_seed_collection(folder / "collection", songs=4)
    configuration = write_configuration(folder / "tiny.jsonc", collection, "gain-mask", epochs=1)
    result = run_unmix("train", str(configuration), "--workingdir", str(folder), env=gain_environment, timeout=300)
    assert result.returncode == 0, result.stderr
    (run,) = (folder / "runs").iterdir()
    return run, gain_environment


def copy_run(run: Path, folder: Path, plugin: dict | None) -> Path:
    """A copy of `run` (same name) whose model.json records `plugin`, or no plugin at all as before the record."""
    copied = shutil.copytree(run, folder / run.name)
    description = json.loads((copied / "model.json").read_text())
    if plugin is None:
        del description["plugin"]
    else:
        description["plugin"] = plugin
    (copied / "model.json").write_text(json.dumps(description))
    return copied


def predict(run: Path, folder: Path, environment: dict[str, str]) -> list[str]:
    """Separate one short song with `run`; the warning lines `unmix predict` printed."""
    song = folder / "song.wav"
    soundfile.write(song, np.random.default_rng(3).normal(0, 0.1, (8000, 2)).astype(np.float32), 8000)
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(folder / "out"),
                       env=environment)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith(WARNING)]


def test_registration_and_provider_name_the_plugin_that_registered_a_name():
    manager = PluginManager()
    manager.register(TonePlugin(), "tone", distribution="unmix-tone", version="0.2.0")
    assert manager.registry("models").registration("NUMPY:TONE").plugin == "tone"
    provider = manager.provider("models", "numpy:tone")
    assert (provider.name, provider.distribution, provider.version) == ("tone", "unmix-tone", "0.2.0")
    with pytest.raises(PluginError, match="unknown model 'numpy:tones'"):
        manager.provider("models", "numpy:tones")


def test_the_hook_specification_has_a_version():
    assert unmix.core.HOOKS_VERSION == (1, 1)
    assert "HOOKS_VERSION" in unmix.core.__all__


@pytest.mark.slow
def test_plugins_json_shows_the_hooks_version(trained):
    _, environment = trained
    listing = json.loads(run_unmix("plugins", "--json", env=environment).stdout)
    assert listing["hooks_version"] == "1.1"


@pytest.mark.slow
def test_model_json_records_the_plugin_that_built_the_model(trained):
    run, _ = trained
    description = json.loads((run / "model.json").read_text())
    assert description["plugin"] == {"name": "gain-test", "distribution": "unmix-gain-test", "version": "0.1"}


@pytest.mark.slow
def test_environment_json_records_every_unmix_package_and_plugin(trained):
    run, _ = trained
    packages = json.loads((run / "environment.json").read_text())["unmix_packages"]
    assert packages["unmix-gain-test"] == "0.1"
    assert packages["unmix-core"] == version("unmix-core")
    assert packages["unmix-cli"] == version("unmix-cli")
    assert "numpy" not in packages


@pytest.mark.slow
def test_an_untouched_run_predicts_without_a_warning(trained, tmp_path):
    run, environment = trained
    assert predict(run, tmp_path, environment) == []


@pytest.mark.slow
def test_another_installed_version_is_one_warning_line(trained, tmp_path):
    run, environment = trained
    changed = copy_run(run, tmp_path / "copy", {"name": "gain-test", "distribution": "unmix-gain-test",
                                                "version": "0.0.9"})
    assert predict(changed, tmp_path, environment) == [
        f"{WARNING}run '{run.name}' was trained with unmix-gain-test 0.0.9, 0.1 is installed; results may differ"
    ]


@pytest.mark.slow
def test_a_distribution_no_longer_installed_is_one_warning_line(trained, tmp_path):
    run, environment = trained
    changed = copy_run(run, tmp_path / "copy", {"name": "blstm", "distribution": "unmix-example-gone",
                                                "version": "0.3.0"})
    assert predict(changed, tmp_path, environment) == [
        f"{WARNING}run '{run.name}' was trained with unmix-example-gone 0.3.0, which is no longer installed; "
        "model 'numpy:gain-mask' now comes from unmix-gain-test 0.1; results may differ"
    ]


@pytest.mark.slow
def test_a_run_folder_from_before_the_record_predicts_without_a_warning(trained, tmp_path):
    run, environment = trained
    assert predict(copy_run(run, tmp_path / "copy", None), tmp_path, environment) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (museval needs it to score)")
def test_evaluate_warns_about_another_version_once(trained, tmp_path):
    run, environment = trained
    changed = copy_run(run, tmp_path / "copy", {"name": "gain-test", "distribution": "unmix-gain-test",
                                                "version": "0.2"})
    result = run_unmix("evaluate", "--run-folder", str(changed), env=environment, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith(WARNING)] == [
        f"{WARNING}run '{run.name}' was trained with unmix-gain-test 0.2, 0.1 is installed; results may differ"
    ]
