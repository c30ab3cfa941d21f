"""Waveform models on the torch kit: a 1-D convolution registered with `kind="waveform"` is a whole model.

The network (tests/torch/waveform_plugin.py) is registered in-process as an entry point would be,
and installed as a throwaway distribution for the `unmix` subprocesses. Training, resume,
separation, `unmix predict`, evaluation and the one-line refusals of mismatched configurations
must all come from the kit and core.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from tests.helpers import assert_one_line_error, clean_environment, run_unmix
from tests.plugin_fixtures import install_plugin_distribution
from tests.torch import waveform_plugin
from tests.training_fixtures import write_seed_collection
from unmix.core.config.loader import check_plugin_names, load_configuration
from unmix.core.errors import ConfigurationError, ModelError, UnmixError
from unmix.core.models.losses import stft_loss_resolutions
from unmix.core.plugins import plugin_manager
from unmix.core.training.callbacks import read_results
from unmix.torch.losses import get_loss

PLUGIN = "waveform-test"
RATE = 8000
SIZE = 2048
STEP = 1536


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    manager = plugin_manager()
    if PLUGIN not in manager.infos:
        manager.register(waveform_plugin, PLUGIN, distribution="unmix-waveform-test", version="0.1")


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    return write_seed_collection(tmp_path_factory.mktemp("waveform") / "collection", songs=4, seconds=1.5)


def write_configuration(path: Path, collection: Path, *, loss: str = "waveform_l1", stereo: bool = False,
                        epochs: int = 2, model: str = "tiny-waveform", backend: str = "torch",
                        transform: str = "waveform", options: dict | None = None) -> Path:
    configuration = {
        "environment": {"name": path.stem},
        "collection": {"folder": str(collection), "sample_rate": RATE, "stereo": stereo, "validation_ratio": 0.25,
                       "test_data_count": 1, "test_frequency": 0},
        "transformation": {"name": transform, "options": {"size": SIZE, "step": STEP}},
        "training": {"epoch": {"count": epochs}, "batch_size": 4, "loss_function": loss,
                     "optimizer": {"name": "adam", "lr": 0.01}, "backend": backend,
                     "model": {"name": model, "options": options if options is not None else {"kernel": 5}},
                     "callbacks": {"tensorboard": {"enabled": False}}},
        "augmentation": {"enabled": True},
        "prediction": {"chunk_seconds": 1.0},
    }
    path.write_text("// a tiny waveform run\n" + json.dumps(configuration, indent=2))
    return path


def train_run(folder: Path, collection: Path, **settings) -> Path:
    from unmix.core.training.driver import train

    return train(write_configuration(folder / "waveform.jsonc", collection, **settings), working_directory=folder).path


@pytest.fixture(scope="module")
def mono_run(tmp_path_factory, collection) -> Path:
    return train_run(tmp_path_factory.mktemp("mono-run"), collection, loss="waveform_l1")


@pytest.fixture(scope="module")
def stereo_run(tmp_path_factory, collection) -> Path:
    return train_run(tmp_path_factory.mktemp("stereo-run"), collection, loss="multi_resolution_stft", stereo=True)


@pytest.mark.parametrize("run_name", ["mono_run", "stereo_run"])
def test_a_waveform_network_trains_records_its_kind_and_resumes(run_name, request):
    run = request.getfixturevalue(run_name)
    described = json.loads((run / "model.json").read_text())
    channels = 2 if run_name == "stereo_run" else 1
    assert described["kind"] == "waveform" and described["input_shape"] == [channels, SIZE]
    assert described["trainable_parameters"] == channels * channels * 5 + channels
    rows = read_results(run / "results.csv")
    assert [row["epoch"] for row in rows] == [1, 2] and all(np.isfinite(row["loss"]) for row in rows)
    assert "input (window)" in (log := (run / "logs.txt").read_text()) and str((channels, SIZE)) in log

    saved = json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])
    saved["training"]["epoch"]["count"] = 3
    (run / "configuration.jsonc").write_text(json.dumps(saved))
    from unmix.core.training.driver import train

    train("", resume=run)
    assert [row["epoch"] for row in read_results(run / "results.csv")] == [1, 2, 3]


@pytest.mark.parametrize("run_name", ["mono_run", "stereo_run"])
@pytest.mark.parametrize("channels", [1, 2])
def test_create_engine_and_separate_give_stems_that_add_up(run_name, channels, request):
    from unmix.core.api import create_engine, run_prediction, separate

    engine = create_engine(request.getfixturevalue(run_name))
    mix = np.random.default_rng(channels).normal(0, 0.1, (channels, 3 * SIZE + 77)).astype(np.float32)
    target, rest = separate(engine, mix, RATE)
    assert target.shape == rest.shape == mix.shape
    np.testing.assert_allclose(target + rest, mix, atol=1e-6)
    assert np.std(target) > 0, "the network's samples, not silence"
    at_other_rate, _ = separate(engine, mix[0], 11025)
    assert at_other_rate.shape == mix[0].shape
    with pytest.raises(UnmixError, match="waveform model"):
        run_prediction(engine, np.zeros((129, 10), np.complex64))


def test_the_torch_model_keeps_waveform_batches_as_they_are(mono_run):
    from unmix.core.api import create_engine

    model = create_engine(mono_run).model
    chunks = np.random.default_rng(0).normal(0, 0.1, (3, 1, SIZE)).astype(np.float32)
    predicted = model.predict(chunks)
    assert predicted.shape == chunks.shape and predicted.dtype == np.float32
    assert model.predict(chunks[:0]).shape == (0, 1, SIZE)
    assert all(parameter.is_contiguous() for parameter in model.network.parameters())


@pytest.mark.slow
def test_unmix_predict_and_evaluate_a_waveform_run(mono_run, tmp_path):
    from unmix.core.evaluation.evaluate import evaluate_run

    site = install_plugin_distribution(tmp_path / "site", "unmix-waveform-test", "0.1",
                                       {"unmix_waveform_test": Path(waveform_plugin.__file__).read_text()},
                                       {PLUGIN: "unmix_waveform_test"})
    song = np.random.default_rng(3).normal(0, 0.1, (2, int(2.7 * 11025))).astype(np.float32)
    soundfile.write(tmp_path / "song.wav", song.T, 11025, subtype="FLOAT")
    result = run_unmix("predict", "--run-folder", str(mono_run), "--song", str(tmp_path / "song.wav"),
                       "--output", str(tmp_path / "out"), "--bit-depth", "float",
                       env=clean_environment(PYTHONPATH=str(site), OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    stems = {stem: soundfile.read(tmp_path / "out" / f"song_{stem}.wav", dtype="float32", always_2d=True)
             for stem in ("vocals", "rest")}
    assert all(rate == 11025 and samples.T.shape == song.shape for samples, rate in stems.values())
    np.testing.assert_allclose(stems["vocals"][0].T + stems["rest"][0].T, song, atol=1e-6)

    evaluation = evaluate_run(mono_run, progress=False)
    assert (mono_run / "evaluation.json").is_file() and evaluation is not None


def test_the_waveform_losses():
    rng = np.random.default_rng(0)
    targets = torch.from_numpy(rng.normal(0, 0.1, (2, 2, SIZE)).astype(np.float32))
    outputs = (targets + 0.05 * torch.from_numpy(rng.normal(0, 1, (2, 2, SIZE)).astype(np.float32))).requires_grad_()
    stft = get_loss("multi_resolution_stft")
    assert float(stft.function(targets, targets, targets)) == pytest.approx(0.0, abs=1e-6)
    value = stft.function(targets, outputs, targets)
    value.backward()
    assert float(value.detach()) > 0 and torch.isfinite(outputs.grad).all()
    silence = torch.zeros((1, 1, 300), requires_grad=True)
    stft.function(torch.zeros((1, 1, 300)), silence, silence).backward()
    assert torch.isfinite(silence.grad).all()
    outputs = outputs.detach()
    assert float(get_loss("waveform_l1").function(targets, outputs, targets)) == pytest.approx(
        float(torch.mean(torch.abs(outputs - targets))))
    assert stft_loss_resolutions(SIZE) == ((512, 128), (1024, 256), (2048, 512))
    assert stft_loss_resolutions(1000) == ((512, 128),)
    assert stft_loss_resolutions(300) == ((256, 64),)


@pytest.mark.parametrize(("settings", "fragments"), [
    ({"transform": "train_window_predict_mask"}, ["'torch:tiny-waveform' is a waveform network",
                                                  'set transformation.name to "waveform"']),
    ({"model": "hourglass", "options": {}}, ["'torch:hourglass' is a spectrogram network", "sample chunks"]),
    ({"loss": "L11_loss"}, ["'L11_loss' multiplies the output by the input", "waveform_l1, multi_resolution_stft"]),
    ({"model": "hourglass", "options": {}, "transform": "train_window_predict_mask", "loss": "multi_resolution_stft"},
     ["'multi_resolution_stft' compares waveforms", "spectrogram network"]),
    ({"backend": "tensorflow", "model": "hourglass", "options": {}},
     ["training.backend 'tensorflow' trains none"]),
    ({"options": {"kernel": 4}}, ["kernel is 4; it must be odd"]),
])
def test_a_configuration_that_mixes_kinds_is_refused_in_one_line(settings, fragments, collection, tmp_path):
    configuration = write_configuration(tmp_path / "mixed.jsonc", collection, **settings)
    with pytest.raises(ConfigurationError) as error:
        check_plugin_names(load_configuration(configuration), plugin_manager())
    message = str(error.value)
    assert "\n" not in message and "mixed.jsonc" in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_unmix_config_check_says_so_in_one_line(collection, tmp_path):
    configuration = write_configuration(tmp_path / "hourglass.jsonc", collection, model="hourglass", options={})
    assert_one_line_error(run_unmix("config", "check", str(configuration)),
                          "hourglass.jsonc", "'torch:hourglass' is a spectrogram network")


def test_registering_an_unknown_kind_is_the_plugins_mistake():
    from unmix.core.errors import PluginError
    from unmix.torch import kit

    with pytest.raises(PluginError, match="kind 'audio'"):
        kit.register_network(lambda name, thing: None, "odd", "x:y", kind="audio")
    with pytest.raises(ModelError, match="waveform network"):
        plugin_manager().registry("models").get("torch:tiny-waveform").read_options({}, (129, 16, 1))


def test_config_show_fills_in_a_waveform_models_defaults(collection, tmp_path):
    from unmix.core.config.loader import model_options_in_full

    configuration = load_configuration(write_configuration(tmp_path / "show.jsonc", collection, options={}))
    assert model_options_in_full(configuration, plugin_manager()) == {"kernel": 9, "mixed_precision": False}
