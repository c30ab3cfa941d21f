"""examples/unmix-example-blstm, pip-installed into a fresh virtual environment and driven by the real `unmix`.

The example is a third-party model plugin written against the public surface only (`unmix.core`
and `unmix.torch.kit`): an Open-Unmix-style network and its declared options. Everything else it
gets from the kit, and this module checks that it really does, outside unmix's own test
environment: `unmix plugins` lists it, `unmix train` trains it, `--resume` continues the run,
`unmix predict` and `unmix evaluate` use its run folder, `unmix train-ddp` trains it in two
processes, and `mixed_precision` is honoured (bfloat16 where the CPU has it, else a warning).

The environment is built as tests/torch/test_examples.py builds its own: a .pth file makes this
interpreter's site-packages (with the editable unmix) visible, and pip installs only the example.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.helpers import REPOSITORY, clean_environment, venv_seeing_unmix
from tests.training_fixtures import write_configuration, write_seed_collection

# Installs a package into a new environment and trains a PyTorch network several times.
pytestmark = [pytest.mark.slow, pytest.mark.e2e]

EXAMPLE = REPOSITORY / "examples" / "unmix-example-blstm"
# Small enough for seconds per run on one thread; two layers so the LSTM's dropout is used.
TINY_BLSTM = {"hidden_size": 16, "layers": 2, "dropout": 0.2}
FLOAT32_WARNING = "mixed_precision is on but this CPU has no bfloat16 support: the torch backend trains in float32"


def run(*command: str | Path, timeout: float = 180, **keywords) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                            env=clean_environment(OMP_NUM_THREADS="1"), **keywords)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def results_epochs(run_folder: Path) -> list[str]:
    with (run_folder / "results.csv").open() as handle:
        return [row["epoch"] for row in csv.DictReader(handle, delimiter=";")]


def only_run(working_directory: Path) -> Path:
    (run_folder,) = (working_directory / "runs").iterdir()
    return run_folder


@pytest.fixture(scope="module")
def python(tmp_path_factory) -> Path:
    """The interpreter of a new virtual environment with the example installed by pip."""
    return venv_seeing_unmix(tmp_path_factory.mktemp("blstm-venv"), EXAMPLE)


def unmix(python: Path, *arguments: str | Path, **keywords) -> subprocess.CompletedProcess[str]:
    """The `unmix` command of the new environment."""
    return run(python, "-m", "unmix.cli", *arguments, **keywords)


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    return write_seed_collection(tmp_path_factory.mktemp("blstm-collection") / "songs", songs=5, seconds=1.5)


def blstm_configuration(folder: Path, collection: Path, epochs: int, **training) -> Path:
    """write_configuration's tiny run on torch:blstm, with Adam's usual rate and a few windows per song."""
    base = write_configuration(folder / "tiny.jsonc", collection, "blstm", epochs=epochs, backend="torch",
                               **TINY_BLSTM)
    child = folder / "blstm.jsonc"
    child.write_text(json.dumps({
        "base": base.name,
        "environment": {"name": "tiny-blstm"},
        "training": {"optimizer": {"lr": 0.001}, "limit_items_per_song": 4, **training},
    }))
    return child


@pytest.fixture(scope="module")
def trained(python, collection, tmp_path_factory) -> Path:
    """A run folder of two epochs, trained by `unmix train` in the new environment."""
    folder = tmp_path_factory.mktemp("blstm-run")
    configuration = blstm_configuration(folder, collection, epochs=2)
    result = unmix(python, "train", configuration, "--workingdir", folder)
    assert "trained" in result.stdout
    return only_run(folder)


def test_the_example_is_installed_only_in_the_new_environment(python):
    assert importlib.util.find_spec("unmix_example_blstm") is None
    run(python, "-c", "import unmix_example_blstm.plugin, sys; assert 'torch' not in sys.modules")


def test_unmix_plugins_lists_the_example(python):
    listing = json.loads(unmix(python, "plugins", "--json").stdout)
    plugins = {plugin["name"]: plugin for plugin in listing["plugins"]}
    assert listing["failures"] == [] and listing["conflicts"] == []
    assert plugins["example-blstm"]["distribution"] == "unmix-example-blstm"
    assert plugins["example-blstm"]["version"] == "0.1.0"
    assert plugins["example-blstm"]["registers"] == {"models": ["torch:blstm"]}


def test_unmix_train_trains_the_network(trained):
    model = json.loads((trained / "model.json").read_text())
    assert model["backend"] == "torch" and model["input_shape"] == [129, 16, 1]
    assert model["trainable_parameters"] > 0
    assert model["plugin"] == {"name": "example-blstm", "distribution": "unmix-example-blstm", "version": "0.1.0"}
    assert sorted(path.name for path in (trained / "weights").iterdir()) == ["best.pt", "last.pt"]
    assert results_epochs(trained) == ["1", "2"]
    log = (trained / "logs.txt").read_text()
    assert "model blstm (torch)" in log and "Trainable params" in log


def test_resume_continues_the_run(python, trained):
    assert json.loads((trained / "state.json").read_text())["epoch"] == 2
    header, body = (trained / "configuration.jsonc").read_text().split("\n", 1)
    configuration = json.loads(body)
    configuration["training"]["epoch"]["count"] = 3
    (trained / "configuration.jsonc").write_text(f"{header}\n{json.dumps(configuration)}")
    unmix(python, "train", "--resume", trained)
    assert f"resuming {trained} after epoch 2" in (trained / "logs.txt").read_text()
    assert json.loads((trained / "state.json").read_text())["epoch"] == 3
    assert results_epochs(trained) == ["1", "2", "3"]


def test_unmix_predict_writes_stems_that_add_up_to_the_mix(python, trained, collection, tmp_path):
    target, rate = soundfile.read(collection / "song00" / "vocals_song00.wav", dtype="float32")
    rest, _ = soundfile.read(collection / "song00" / "rest_song00.wav", dtype="float32")
    song = tmp_path / "mix.wav"
    soundfile.write(song, target + rest, rate, subtype="FLOAT")
    mix, _ = soundfile.read(song)
    unmix(python, "predict", "--run-folder", trained, "--song", song, "--output", tmp_path / "stems")
    vocals, vocals_rate = soundfile.read(tmp_path / "stems" / "mix_vocals.wav")
    others, _ = soundfile.read(tmp_path / "stems" / "mix_rest.wav")
    assert vocals_rate == rate and vocals.shape == mix.shape
    np.testing.assert_allclose(vocals + others, mix, atol=2 / 32768)
    assert 0 < np.sum(vocals**2) < np.sum(mix**2) * 1.01


def test_unmix_evaluate_writes_its_report(python, trained, collection):
    unmix(python, "evaluate", "--run-folder", trained, "--collection", collection, "--test-data-count", "1")
    report = json.loads((trained / "evaluation.json").read_text())
    assert {entry["method"] for entry in report["songs"]} == {"model", "mixture", "oracle"}


def test_unmix_train_ddp_trains_the_network_in_two_processes(python, collection, tmp_path):
    configuration = blstm_configuration(tmp_path, collection, epochs=1, distribution="ddp")
    result = unmix(python, "train-ddp", "--processes", "2", configuration, "--workingdir", tmp_path / "work")
    assert "not started by torchrun" not in result.stderr
    run_folder = only_run(tmp_path / "work")
    assert sorted(path.name for path in (run_folder / "weights").iterdir()) == ["best.pt", "last.pt"]
    assert results_epochs(run_folder) == ["1"]
    assert "not started by torchrun" not in (run_folder / "logs.txt").read_text()


def test_mixed_precision_trains_in_bfloat16_or_says_it_cannot(python, collection, tmp_path):
    supported = run(python, "-c", "import torch; print(torch.ops.mkldnn._is_mkldnn_bf16_supported())").stdout
    configuration = blstm_configuration(tmp_path, collection, epochs=1)
    child = tmp_path / "mixed.jsonc"
    child.write_text(json.dumps({"base": configuration.name,
                                 "training": {"model": {"options": {"mixed_precision": True}}}}))
    result = unmix(python, "train", child, "--workingdir", tmp_path)
    run_folder = only_run(tmp_path)
    assert results_epochs(run_folder) == ["1"]
    merged = json.loads((run_folder / "configuration.jsonc").read_text().split("\n", 1)[1])
    assert merged["training"]["model"]["options"] == {**TINY_BLSTM, "mixed_precision": True}
    # The summary in the run log says what the forward passes computed in; the warning comes while the model
    # is built, before the run's logs.txt is open, so it is on stderr only.
    log = (run_folder / "logs.txt").read_text()
    if supported.strip() == "True":
        assert "Computes in: bfloat16 on cpu, with float32 weights" in log
        assert FLOAT32_WARNING not in result.stderr
    else:
        assert "Computes in: float32 on cpu" in log
        assert f"unmix: warning: {FLOAT32_WARNING}" in result.stderr.splitlines()
