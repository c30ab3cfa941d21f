"""`unmix export` and the onnxruntime runtime: every shipped model kind, exported from a real tiny run, separates
as its framework does (the network's output within 1e-4, the stems of a song within -60 dB), and every wrong
file or option is one line.

Each model trains one epoch on a tiny stereo collection (stereo: the RoFormers' graphs take the two
channels interleaved bin by bin, which the runtime's STFT must reproduce).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import soundfile
import torch

from tests.bad_inputs.catalogue import assert_clean_failure, snapshot
from tests.helpers import run_unmix
from unmix.core.api import create_engine, separate
from unmix.core.errors import ModelError
from unmix.core.training.driver import train
from unmix.onnx import metadata
from unmix.onnx.export import export_run
from unmix.testing import tiny_configuration, write_tiny_collection
from unmix.tf import model as tf_model

pytestmark = pytest.mark.slow
torch.set_num_threads(1)

HOURGLASS = {"stacks": 2, "hg_module": {"filters": 8}, "hg_module_end": {"filters": 8},
             "initial_convolutions": {"filters": [8, 8, 8, 8, 8]}}
BAND_HOURGLASS = {"stacks": 2, "filters": 8, "bands": 32}
ROFORMER = {"dim": 16, "depth": 1, "heads": 2, "dim_head": 8, "stft_n_fft": 256, "stft_hop_length": 64}
WAVEFORM = {"transformation": {"name": "waveform", "options": {"size": 4000, "step": 2000, "normalizer": ""}},
            "training": {"loss_function": "multi_resolution_stft", "metrics": []}}
MODELS = {
    "torch:hourglass": ("torch", "hourglass", HOURGLASS, {}),
    "torch:band-hourglass": ("torch", "band-hourglass", BAND_HOURGLASS, {}),
    "tensorflow:hourglass": ("tensorflow", "hourglass", HOURGLASS, {}),
    "tensorflow:band-hourglass": ("tensorflow", "band-hourglass", BAND_HOURGLASS, {}),
    "torch:bs-roformer": ("torch", "bs-roformer", {**ROFORMER, "freqs_per_bands": [1] * 16 + [4] * 8 + [81]}, WAVEFORM),
    "torch:mel-roformer": ("torch", "mel-roformer", {**ROFORMER, "num_bands": 12, "sample_rate": 8000}, WAVEFORM),
}


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_collection(tmp_path_factory.mktemp("songs"), songs=4, stereo=True)


def trained_run(folder: Path, collection: Path, model: str) -> Path:
    backend, name, options, overrides = MODELS[model]
    configuration = tiny_configuration(folder, collection, backend=backend, model=name, options=options, epochs=1,
                                       **overrides)
    return train(configuration, working_directory=folder).path


def level_db(difference: np.ndarray, reference: np.ndarray) -> float:
    """The energy of `difference` against `reference`'s, in dB."""
    return float(10 * np.log10(np.sum(difference**2) / np.sum(reference**2)))


@pytest.mark.parametrize("model", list(MODELS))
def test_an_exported_model_separates_as_its_framework_does(tmp_path, collection, model):
    run = trained_run(tmp_path, collection, model)
    exported = export_run(run)
    assert exported.path == run / "export" / f"{run.name}.onnx"
    assert exported.largest_difference < 1e-4

    framework, runtime = create_engine(run), create_engine(exported.path)
    assert runtime.model.backend == "onnxruntime" and runtime.target == framework.target == "vocals"
    assert runtime.model.trainable_parameters() == framework.model.trainable_parameters()
    mix = soundfile.read(next(collection.glob("song00/vocals_*.wav")), dtype="float32")[0].T
    mix = mix + soundfile.read(next(collection.glob("song00/rest_*.wav")), dtype="float32")[0].T
    framework_target, _ = separate(framework, mix, 8000)
    runtime_target, runtime_rest = separate(runtime, mix, 8000)
    assert runtime_target.shape == mix.shape
    np.testing.assert_allclose(runtime_target + runtime_rest, mix, atol=1e-6)
    assert level_db(runtime_target - framework_target, framework_target) < -60

    found = runtime.model.metadata
    assert found[metadata.MODEL] == model and found[metadata.TARGET] == "vocals"
    assert found[metadata.SAMPLE_RATE] == "8000" and found[metadata.CHANNELS] == "2"
    assert found[metadata.KIND] == ("waveform" if "roformer" in model else "spectrogram")
    graph = json.loads(found[metadata.GRAPH])
    if "roformer" in model:
        assert graph == {"graph": "masked_spectrogram", "stft": {"n_fft": 256, "hop_length": 64, "win_length": 256,
                                                                "normalized": False, "zero_dc": True}}
    else:
        assert graph == {"graph": "predict"}
    assert json.loads(found[metadata.CONFIGURATION])["training"]["model"]["name"] == MODELS[model][1]
    # onnxruntime's scatter-adds race between threads on repeated indices (the mel-band model's overlapping
    # bands did: one call in ten off by up to 1.0 in the mask), so no exported graph may hold one.
    assert not [node.op_type for node in onnx.load(exported.path).graph.node if node.op_type.startswith("Scatter")]


def test_a_keras_model_trained_in_mixed_precision_exports_a_float32_graph(tmp_path, collection, monkeypatch):
    # bfloat16 whatever this CPU is: without the instructions oneDNN emulates it, slower but alike.
    monkeypatch.setattr(tf_model, "cpu_has_bfloat16", lambda: True)
    configuration = tiny_configuration(tmp_path, collection, backend="tensorflow", model="band-hourglass",
                                       options={**BAND_HOURGLASS, "mixed_precision": True}, epochs=1)
    run = train(configuration, working_directory=tmp_path).path
    framework = create_engine(run)
    assert framework.model.precision == "bfloat16 on cpu, with float32 weights"

    exported = export_run(run)

    # The framework computes in bfloat16 (8 bits of mantissa), the graph in float32.
    assert exported.largest_difference < 2e-2
    graph = onnx.load(exported.path).graph
    sixteen_bit = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    assert not [tensor.name for tensor in graph.initializer if tensor.data_type in sixteen_bit]
    assert not [node.name for node in graph.node if node.op_type == "Cast"
                and any(attribute.name == "to" and attribute.i in sixteen_bit for attribute in node.attribute)]
    mix = soundfile.read(next(collection.glob("song00/vocals_*.wav")), dtype="float32")[0].T
    runtime_target, runtime_rest = separate(create_engine(exported.path), mix, 8000)
    np.testing.assert_allclose(runtime_target + runtime_rest, mix, atol=1e-6)


@pytest.fixture(scope="module")
def band_run(tmp_path_factory, collection) -> Path:
    return trained_run(tmp_path_factory.mktemp("band"), collection, "torch:band-hourglass")


def test_an_exported_model_only_separates(tmp_path, band_run):
    engine = create_engine(export_run(band_run, tmp_path / "band.onnx").path)
    with pytest.raises(ModelError, match="only separates; train with the run folder"):
        engine.model.train_epoch([], 1, lambda step, metrics: None)


def test_unmix_export_then_unmix_predict_model(tmp_path, collection, band_run):
    output = tmp_path / "models" / "band.onnx"
    exported = run_unmix("export", "--run-folder", str(band_run), "--output", str(output), timeout=300)
    assert exported.returncode == 0, exported.stderr
    assert f"to {output}" in exported.stdout and "onnxruntime matches the framework within" in exported.stdout

    song = tmp_path / "mix.wav"
    mix = sum(soundfile.read(next(collection.glob(f"song01/{stem}_*.wav")))[0] for stem in ("vocals", "rest"))
    soundfile.write(song, mix, 8000, subtype="FLOAT")
    for model, folder in ((["--model", str(output)], "onnx"),
                          (["--run-folder", str(band_run), "--engine", "framework"], "framework")):
        separated = run_unmix("predict", *model, "--song", str(song), "--output", str(tmp_path / folder),
                              "--bit-depth", "float", timeout=300)
        assert separated.returncode == 0, separated.stderr
    onnx_vocals, rate = soundfile.read(tmp_path / "onnx" / "mix_vocals.wav")
    framework_vocals, _ = soundfile.read(tmp_path / "framework" / "mix_vocals.wav")
    assert rate == 8000 and onnx_vocals.shape == mix.shape
    assert level_db(onnx_vocals - framework_vocals, framework_vocals) < -60


def test_separating_with_an_exported_model_opens_its_session_once(tmp_path, band_run, monkeypatch):
    exported = export_run(band_run, tmp_path / "band.onnx").path
    opened = []
    real_session = onnxruntime.InferenceSession

    def counting_session(path, *args, **kwargs):
        opened.append(path)
        return real_session(path, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting_session)
    engine = create_engine(exported)
    assert opened == [str(exported)]
    assert engine.model.predict(np.zeros((1, *engine.model.input_shape), np.float32)).shape[0] == 1


def test_export_refuses_to_overwrite_and_names_the_suffix(tmp_path, band_run):
    output = tmp_path / "band.onnx"
    output.write_bytes(b"an earlier export")
    before = snapshot(tmp_path)
    assert_clean_failure(run_unmix("export", "--run-folder", str(band_run), "--output", str(output)),
                         str(output), "already exists", "--overwrite")
    assert_clean_failure(run_unmix("export", "--run-folder", str(band_run), "--output", str(tmp_path / "band.pt")),
                         "must end in .onnx")
    assert_clean_failure(run_unmix("export", "--run-folder", str(tmp_path / "no-run")), "no-run")
    assert snapshot(tmp_path) == before


def foreign_onnx_model(path: Path) -> Path:
    """A valid ONNX graph (identity) that unmix did not write: no unmix metadata."""
    import onnx
    from onnx import TensorProto, helper

    tensor = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [tensor("x", TensorProto.FLOAT, [1])], [tensor("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize(("make_file", "fragments"), [
    (lambda folder: folder / "missing.onnx", ["missing.onnx", "does not exist", "unmix export"]),
    (lambda folder: folder, ["is a folder", "--run-folder"]),
    (lambda folder: write_text(folder / "notes.onnx", "not a graph"), ["notes.onnx", "not an ONNX model"]),
    (lambda folder: foreign_onnx_model(folder / "identity.onnx"), ["identity.onnx", "unmix did not export"]),
    (lambda folder: write_text(folder / "weights.pt", "x"),
     ["weights.pt", "no installed runtime reads .pt", "read: .onnx"]),
])
def test_predict_model_refuses_what_is_not_an_exported_model(tmp_path, make_file, fragments):
    song = tmp_path / "song.wav"
    soundfile.write(song, np.zeros(8000, dtype=np.float32), 8000)
    model = make_file(tmp_path)
    assert_clean_failure(run_unmix("predict", "--model", str(model), "--song", str(song), "--output",
                                   str(tmp_path / "out")), *fragments)
    assert not (tmp_path / "out").exists()


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_predict_run_folder_prefers_a_current_export(tmp_path, band_run):
    song = tmp_path / "song.wav"
    soundfile.write(song, np.random.default_rng(1).uniform(-0.3, 0.3, (8000, 2)), 8000)

    def predict(*options: str):
        return run_unmix("predict", "--run-folder", str(band_run), "--song", str(song), "--output",
                         str(tmp_path / "out"), "--overwrite", *options, timeout=300)

    exported = export_run(band_run, overwrite=True).path
    assert exported == band_run / "export" / f"{band_run.name}.onnx"
    chosen = predict()
    assert chosen.returncode == 0 and f"separating with the run's export {exported}" in chosen.stderr
    framework = predict("--engine", "framework")
    assert framework.returncode == 0 and "separating with the run's export" not in framework.stderr

    best = band_run / "weights" / "best.pt"
    later = exported.stat().st_mtime + 60
    os.utime(best, (later, later))
    stale = predict()
    assert stale.returncode == 0 and "separating with the run's export" not in stale.stderr
    assert "older than its best checkpoint" in stale.stderr and "--overwrite" in stale.stderr
    assert_clean_failure(predict("--engine", "exported"), "no current export", "unmix export --run-folder")
    assert_clean_failure(run_unmix("predict", "--model", str(exported), "--song", str(song), "--engine", "exported"),
                         "--engine chooses how a --run-folder separates")
    exported.unlink()
