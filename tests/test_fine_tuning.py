"""Fine-tuning on both backends: `training.initial_weights` starts a new run from another run's network
weights with a fresh optimiser, `training.freeze` keeps named weights exactly as they are, and every
way to get either wrong is one line naming the setting and its file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, clean_environment, run_unmix
from tests.tiny_models import build, half_gain_batches, ignore, tiny_settings
from tests.training_fixtures import register_gain_model, write_configuration, write_seed_collection
from unmix.core.config.loader import load_configuration
from unmix.core.config.schema import Optimizer
from unmix.core.errors import ConfigurationError, ModelError
from unmix.core.models.freezing import names_under
from unmix.core.training.driver import train
from unmix.core.training.fine_tuning import fine_tune

# Keras' own saving code converts variables in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

# TensorFlow's start-up and first compile cost about a minute, so its cases stay out of the fast subset.
BACKENDS = [pytest.param("tensorflow", marks=pytest.mark.slow), "torch"]
SUFFIX = {"tensorflow": ".keras", "torch": ".pt"}
TINY = {"bands": 16, "stacks": 2, "filters": 8}
# The band hourglass's first layers carry these names on both backends; bin_scale is a batch norm.
FROZEN = ["bin_scale", "to_bands"]
SEPARATOR = {"tensorflow": "/", "torch": "."}
# The windows of tiny_configuration's runs: fft_length 256, 16 frames, mono.
INPUT_SHAPE = (129, 16, 1)
# Subprocesses run PyTorch single-threaded, as the in-process tests do (tests/torch/conftest.py).
ENVIRONMENT = clean_environment(OMP_NUM_THREADS="1")


def named_values(model: Any) -> dict[str, np.ndarray]:
    """Every weight and statistic of the network by name (Keras: by layer path), as numpy copies."""
    if model.backend == "torch":
        return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.network.state_dict().items()}
    return {variable.path: np.array(variable.numpy()) for variable in model.network.weights}


def values(model: Any) -> list[np.ndarray]:
    """The network's weights in network order, to compare two instances (Keras numbers its layers per process)."""
    return list(named_values(model).values())


def is_frozen(name: str, backend: str) -> bool:
    return any(name.startswith(prefix + SEPARATOR[backend]) for prefix in FROZEN)


# ---- the model methods -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_weights_takes_the_network_weights_and_leaves_the_optimiser_fresh(tmp_path, backend):
    trained = build(tiny_settings("band-hourglass", TINY, backend=backend))
    trained.train_epoch(half_gain_batches(2, seed=1), 2, ignore)
    checkpoint = tmp_path / f"trained{SUFFIX[backend]}"
    trained.save_checkpoint(checkpoint)

    tuned = build(tiny_settings("band-hourglass", TINY, backend=backend, optimizer=Optimizer("adam", 5e-4)))
    tuned.load_weights(checkpoint)
    for mine, theirs in zip(values(tuned), values(trained), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    windows = next(half_gain_batches(1, seed=2, batch_size=3))[0]
    np.testing.assert_array_equal(tuned.predict(windows), trained.predict(windows))
    assert tuned.iterations == 0, "the optimiser's step count is not taken over"
    assert tuned.learning_rate == pytest.approx(5e-4), "the learning rate is the configuration's"
    if backend == "torch":
        assert not tuned.optimizer.state, "no Adam moments are taken over"


@pytest.mark.parametrize("backend", BACKENDS)
def test_frozen_weights_and_statistics_stay_bit_identical_while_the_rest_trains(backend):
    model = build(tiny_settings("band-hourglass", TINY, backend=backend))
    everything = model.trainable_parameters()
    before = named_values(model)
    model.freeze(FROZEN)
    frozen = [name for name in before if is_frozen(name, backend)]
    assert any("mean" in name for name in frozen), "bin_scale's batch-norm statistics are among them"
    assert model.trainable_parameters() < everything
    model.train_epoch(half_gain_batches(3, seed=4), 3, ignore)
    after = named_values(model)
    for name in frozen:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    changed = [name for name in before
               if not is_frozen(name, backend) and not np.array_equal(after[name], before[name])]
    assert any(name.startswith("to_bins") for name in changed), changed


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_freeze_name_that_names_nothing_lists_the_names_there_are(backend):
    model = build(tiny_settings("band-hourglass", TINY, backend=backend))
    with pytest.raises(ModelError, match=r"'bin_scal' names no .* \(did you mean 'bin_scale'\?\); its top-level "
                                         r"names are bin_scale, to_bands, "):
        model.freeze(["bin_scale", "bin_scal"])


def test_a_name_freezes_its_group_not_its_namesakes():
    names = ["layers.1.weight", "layers.10.weight", "layers.1", "layers_1.bias", "head.weight"]
    assert names_under(["layers.1"], names) == ["layers.1.weight", "layers.1"]
    assert names_under(["layers", "head.weight"], names) == ["layers.1.weight", "layers.10.weight", "layers.1",
                                                            "head.weight"]
    with pytest.raises(ModelError, match=r"'layers.2' names no parameter of this model \(did you mean 'layers.1'"):
        names_under(["layers.2"], names)


# ---- through the training driver ---------------------------------------------------------------


def tiny_configuration(folder: Path, collection: Path, backend: str, name: str, **training: Any) -> Path:
    """A one-epoch band-hourglass run on `collection`, with `training` keys set over write_configuration's."""
    base = write_configuration(folder / f"base-{backend}.jsonc", collection, "band-hourglass", epochs=1,
                               backend=backend, **TINY)
    child = folder / f"{name}.jsonc"
    child.write_text(json.dumps({
        "base": base.name,
        "environment": {"name": name},
        "training": {"optimizer": {"lr": 0.001}, "limit_items_per_song": 4, **training},
    }))
    return child


def checkpoint_contents(configuration: Path, checkpoint: Path) -> tuple[list[tuple[str, np.ndarray]], int]:
    """A checkpoint's weights by name, in network order, and its optimiser step count, loaded into the model the
    configuration builds (as `--resume` loads it)."""
    model = build(load_configuration(configuration).settings, INPUT_SHAPE)
    model.load_checkpoint(checkpoint)
    return list(named_values(model).items()), model.iterations


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_seed_collection(tmp_path_factory.mktemp("songs"), songs=4, seconds=1.5)


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory, collection: Path) -> Callable[[str], Path]:
    """Run A of a backend, trained once per module when a test first asks: one epoch from random weights."""
    runs: dict[str, Path] = {}

    def run_of(backend: str) -> Path:
        if backend not in runs:
            folder = tmp_path_factory.mktemp(f"earlier-{backend}")
            runs[backend] = train(tiny_configuration(folder, collection, backend, "a"), folder).path
        return runs[backend]

    return run_of


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_run_starts_from_another_runs_best_weights_with_a_fresh_optimiser(tmp_path, monkeypatch, collection,
                                                                                  earlier_run, backend):
    earlier = earlier_run(backend)
    configurations = tmp_path / "configurations"
    configurations.mkdir()
    # A relative path is taken from the configuration's folder, whatever the working directory.
    configuration = tiny_configuration(configurations, collection, backend, "b",
                                       initial_weights=os.path.relpath(earlier, configurations), freeze=FROZEN)
    monkeypatch.chdir(collection)
    run = train(configuration, tmp_path).path

    best = earlier / "weights" / f"best{SUFFIX[backend]}"
    description = json.loads((run / "model.json").read_text())
    assert description["initial_weights"] == str(best.resolve())
    assert description["frozen"] == FROZEN
    trained_before = json.loads((earlier / "model.json").read_text())["trainable_parameters"]
    assert description["trainable_parameters"] < trained_before
    log = (run / "logs.txt").read_text()
    assert f"starting from the weights of {best.resolve()}" in log and "frozen, not trained: bin_scale, to_bands" in log
    results = (run / "results.csv").read_text().splitlines()
    assert [row.split(";")[0] for row in results[1:]] == ["1"], "the epochs count from 1"

    started, earlier_steps = checkpoint_contents(configuration, best)
    ended, steps = checkpoint_contents(configuration, run / "weights" / f"last{SUFFIX[backend]}")
    assert steps == earlier_steps, "one epoch on the same songs from a step count of 0, not continued from A's"
    frozen = [index for index, (name, _) in enumerate(ended) if is_frozen(name, backend)]
    assert frozen
    for index in frozen:
        np.testing.assert_array_equal(ended[index][1], started[index][1], err_msg=ended[index][0])
    assert any(not np.array_equal(ended[index][1], started[index][1])
               for index in range(len(ended)) if index not in frozen)

    # --resume freezes the same weights again: the checkpoint keeps values, not which of them train.
    merged = json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])
    merged["training"]["epoch"]["count"] = 2
    (run / "configuration.jsonc").write_text("// one more epoch\n" + json.dumps(merged))
    train("", resume=run)
    resumed, resumed_steps = checkpoint_contents(configuration, run / "weights" / f"last{SUFFIX[backend]}")
    assert resumed_steps == 2 * steps
    for index in frozen:
        np.testing.assert_array_equal(resumed[index][1], started[index][1], err_msg=resumed[index][0])


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_checkpoint_of_the_other_backend_is_one_line(tmp_path, collection, backend):
    other = "torch" if backend == "tensorflow" else "tensorflow"
    checkpoint = tmp_path / f"other{SUFFIX[other]}"
    build(tiny_settings(backend=other)).save_checkpoint(checkpoint)
    loaded = load_configuration(tiny_configuration(tmp_path, collection, backend, "b", initial_weights=checkpoint.name))
    written_by = {"tensorflow": "Keras", "torch": "PyTorch"}[other]
    with pytest.raises(ConfigurationError, match=rf"b.jsonc: training.initial_weights: checkpoint '.*other"
                                                 rf"{SUFFIX[other]}' was written by the {written_by} backend"):
        fine_tune(build(tiny_settings(backend=backend)), loaded, checkpoint)


def test_a_model_that_cannot_be_fine_tuned_says_so(tmp_path, collection):
    register_gain_model()
    configuration = write_configuration(tmp_path / "gain.jsonc", collection, "gain-mask", epochs=1)
    data = json.loads(configuration.read_text().split("\n", 1)[1])
    data["training"]["freeze"] = ["gains"]
    configuration.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match=r"gain.jsonc: training.freeze: model 'numpy:gain-mask' cannot keep "
                                                 "weights frozen"):
        train(configuration, tmp_path)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run folder is left"


# ---- through `unmix train` ------------------------------------------------------------------------


def failed_training(tmp_path: Path, collection: Path, backend: str, **training: Any) -> Any:
    configuration = tiny_configuration(tmp_path, collection, backend, "b", **training)
    result = run_unmix("train", str(configuration), "--workingdir", str(tmp_path), env=ENVIRONMENT, timeout=180)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run folder is left"
    return result


def test_a_missing_path_is_one_line_before_any_song_is_read(tmp_path, collection):
    result = failed_training(tmp_path, collection, "torch", initial_weights="runs/nowhere")
    missing = tmp_path.resolve() / "runs" / "nowhere"
    assert_one_line_error(result, "b.jsonc: training.initial_weights:", f"'{missing}' does not exist")


def test_a_run_of_the_other_backend_is_one_line(tmp_path, collection, earlier_run):
    earlier = earlier_run("torch")
    result = failed_training(tmp_path, collection, "tensorflow", initial_weights=str(earlier))
    assert_one_line_error(result, "training.initial_weights:", f"run folder '{earlier}' was trained "
                          "with the torch backend, this configuration trains with tensorflow")


@pytest.mark.slow
def test_weights_of_other_options_are_one_line(tmp_path, collection, earlier_run):
    checkpoint = earlier_run("torch") / "weights" / "best.pt"
    configuration = tiny_configuration(tmp_path, collection, "torch", "b", initial_weights=str(checkpoint))
    configuration.write_text(configuration.read_text().replace('"training": {', '"training": {"model": {"options": '
                                                                                '{"filters": 12}}, ', 1))
    result = run_unmix("train", str(configuration), "--workingdir", str(tmp_path), env=ENVIRONMENT, timeout=180)
    assert_one_line_error(result, "b.jsonc: training.initial_weights:", f"checkpoint '{checkpoint}' does not fit",
                          "training.model.options differ")


@pytest.mark.slow
def test_an_unknown_freeze_name_is_one_line(tmp_path, collection):
    result = failed_training(tmp_path, collection, "torch", freeze=["to_band"])
    assert_one_line_error(result, "b.jsonc: training.freeze: 'to_band' names no parameter of this model (did you "
                          "mean 'to_bands'?); its top-level names are bin_scale, to_bands")
