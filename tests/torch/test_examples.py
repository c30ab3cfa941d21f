"""The example plugin packages under examples/, installed with pip into a fresh virtual environment.

The environment (tests.helpers.venv_seeing_unmix) sees the editable unmix of this interpreter;
the examples are built and installed into it for real (`pip --python VENV install`), then
`unmix plugins --json` must list them, `unmix train` must train the example model, and a tone
from the example source must be separated by it through the Python API.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPOSITORY, clean_environment, venv_seeing_unmix
from tests.training_fixtures import write_configuration, write_seed_collection

# Installs the example plugins into a new environment and trains; the fast subset skips this module.
pytestmark = pytest.mark.slow

EXAMPLES = REPOSITORY / "examples"
PACKAGES = ("unmix-example-model", "unmix-example-tone")


def run(*command: str | Path, timeout: float = 120, **keywords) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                            env=clean_environment(OMP_NUM_THREADS="1"), **keywords)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def python(tmp_path_factory) -> Path:
    """The interpreter of a new virtual environment with both examples installed by pip."""
    return venv_seeing_unmix(tmp_path_factory.mktemp("examples-venv"), *(EXAMPLES / package for package in PACKAGES))


def test_the_examples_are_installed_only_in_the_new_environment(python):
    assert importlib.util.find_spec("unmix_example_model") is None
    run(python, "-c", "import unmix_example_model, unmix_example_tone, unmix.core")


def test_unmix_plugins_lists_the_examples(python):
    listing = json.loads(run(python, "-m", "unmix.cli", "plugins", "--json").stdout)
    plugins = {plugin["name"]: plugin for plugin in listing["plugins"]}
    assert listing["failures"] == [] and listing["conflicts"] == []
    assert plugins["example-model"]["distribution"] == "unmix-example-model"
    assert plugins["example-model"]["version"] == "0.1.0"
    assert plugins["example-model"]["registers"] == {"models": ["numpy:example-gain"]}
    assert plugins["example-tone"]["registers"] == {"sources": ["tone"]}
    assert "torch:hourglass" in plugins["torch"]["registers"]["models"], "the example sits beside unmix's own plugins"


SEPARATE = textwrap.dedent("""
    import json, sys, tempfile
    from pathlib import Path
    import numpy as np, soundfile
    from unmix.core.api import create_engine, separate
    from unmix.core.separation.prediction import find_source

    uri = "tone://440+1800?seconds=1.5&rate=8000"
    source = find_source(uri)
    with tempfile.TemporaryDirectory() as folder:
        (song,) = source.songs(uri, Path(folder))
        mix, rate = soundfile.read(song.path, dtype="float32")
    engine = create_engine(sys.argv[1])
    target, rest = separate(engine, mix, rate)
    print(json.dumps({"source": type(source).__module__, "model": type(engine.model).__module__,
                      "song": song.name, "shapes": [list(mix.shape), list(target.shape)],
                      "error": float(np.max(np.abs(target + rest - mix))), "target_energy": float(np.sum(target**2))}))
""")


def test_a_run_of_the_example_model_separates_a_tone_from_the_example_source(python, tmp_path):
    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=1.5)
    base = write_configuration(tmp_path / "tiny.jsonc", collection, "example-gain", epochs=2, backend="numpy")
    configuration = tmp_path / "example.jsonc"
    configuration.write_text(json.dumps({"base": base.name, "training": {"optimizer": {"lr": 0.05},
                                                                          "metrics": ["mean_pred", "max_pred"]}}))
    trained = run(python, "-m", "unmix.cli", "train", configuration, "--workingdir", tmp_path)
    assert "trained" in trained.stdout
    run_folder = next((tmp_path / "runs").iterdir())
    assert json.loads((run_folder / "model.json").read_text())["backend"] == "numpy"
    assert (run_folder / "weights" / "best.npz").is_file()

    result = json.loads(run(python, "-c", SEPARATE, run_folder).stdout)
    assert result["source"] == "unmix_example_tone.source"
    assert result["model"] == "unmix_example_model.model"
    assert result["song"] == "tone-440+1800"
    assert result["shapes"] == [[12000], [12000]]
    assert result["error"] < 1e-5, "target and rest add up to the mix"
    assert result["target_energy"] > 0
