"""`unmix import msst`: MSST RoFormer checkpoints become unmix run folders that compute what MSST's models compute.

The reference is lucidrains' `bs-roformer` package at 0.3.10 (a test-only dependency, pinned in
noxfile.py), the implementation MSST's `models/bs_roformer` was written from: with MSST's
defaults for what it lacks (no linear-attention layers, no skip connections), its state-dict
names are MSST's, so its `state_dict()` saved with `torch.save` is an MSST checkpoint. Later
releases name the layers differently (an empty slot for linear attention from 0.4, hyper-connection
wrappers from 0.6) or add parameters (value-residual mixes from 0.5). 0.3.10 lacks MSST's
`zero_dc`, which MSST turns on by default: against a YAML with `zero_dc: false` the package is
compared as it is, and against MSST's default after taking away the contribution of the 0 Hz
bin the package keeps (its mask, caught by a forward hook, times the mix's 0 Hz bin, through
torch's own inverse STFT). Nothing is downloaded: the networks are tiny and their weights random.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bs_roformer
import numpy as np
import pytest
import soundfile
import torch

from tests.helpers import assert_one_line_error, clean_environment, run_unmix
from unmix.testing import write_tiny_collection

# The reference's constructor measures its STFT with torch.stft and no window, which torch warns about.
pytestmark = pytest.mark.filterwarnings("ignore:A window was not provided:UserWarning")

ENVIRONMENT = clean_environment(OMP_NUM_THREADS="1")
SAMPLE_RATE = 8000
CHUNK = 2048
STFT = {"stft_n_fft": 64, "stft_hop_length": 16, "stft_win_length": 64}
NETWORK = {"dim": 16, "depth": 2, "time_transformer_depth": 1, "freq_transformer_depth": 1, "dim_head": 8,
           "heads": 2, "mask_estimator_depth": 2, **STFT}
BANDS = (2, 2, 4, 4, 8, 13)  # 33 bins: stft_n_fft 64


def msst_yaml(model: dict[str, Any], *, instruments: tuple[str, ...] = ("vocals", "other"),
              target: str | None = "vocals", overlap: int = 4) -> str:
    """An MSST configuration as its repository writes them: sections, comments, !!python/tuple lists."""
    lines = ["audio:", f"  chunk_size: {CHUNK}", "  num_channels: 2", f"  sample_rate: {SAMPLE_RATE}", "",
             "model:"]
    for key, value in model.items():
        if isinstance(value, tuple):
            lines.append(f"  {key}: !!python/tuple")
            lines.extend(f"    - {item}" for item in value)
        else:
            lines.append(f"  {key}: {json.dumps(value)}")
    lines += ["  flash_attn: true  # the attention kernel", "  dim_freqs_in: 33",
              "  multi_stft_resolution_loss_weight: 1.0", "  multi_stft_resolutions_window_sizes: !!python/tuple",
              "  - 256", "  - 128", "  multi_stft_hop_size: 32", "  use_torch_checkpoint: False", "",
              "training:", "  batch_size: 2", "  lr: 5.0e-05", "  optimizer: adam", "  instruments:"]
    lines += [f"  - {name}" for name in instruments]
    if target is not None:
        lines.append(f"  target_instrument: {target}")
    lines += ["", "augmentations:", "  mixup_probs: !!python/tuple", "    - 0.2", "    - 0.02", "",
              "inference:", "  batch_size: 1", f"  num_overlap: {overlap}", ""]
    return "\n".join(lines)


def bs_reference(stems: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return bs_roformer.BSRoformer(stereo=True, num_stems=stems, freqs_per_bands=BANDS, flash_attn=False,
                                  **NETWORK).eval()


def mel_reference(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return bs_roformer.MelBandRoformer(stereo=True, num_bands=8, sample_rate=SAMPLE_RATE, flash_attn=False,
                                       **NETWORK).eval()


def write_msst_files(folder: Path, yaml_text: str, weights: Any) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    configuration, checkpoint = folder / "model.yaml", folder / "model.ckpt"
    configuration.write_text(yaml_text)
    torch.save(weights, checkpoint)
    return configuration, checkpoint


def import_run(configuration: Path, checkpoint: Path, output: Path, *extra: str) -> Path:
    result = run_unmix("import", "msst", "--config", str(configuration), "--checkpoint", str(checkpoint),
                       "--output", str(output), *extra, env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return output


def imported_network(run: Path) -> torch.nn.Module:
    """The network `unmix predict` builds from the run folder, with the run's best checkpoint."""
    from unmix.core.runs import open_run_folder
    from unmix.core.separation.prediction import load_engine, run_model_files

    return load_engine(run_model_files(open_run_folder(run))).model.network.eval()


def mix(batch: int = 2) -> torch.Tensor:
    """Stereo chunks whose length is a multiple of the hop, so the reference (which does not pass the
    length to its inverse STFT) returns as many samples as it gets."""
    return torch.from_numpy(np.random.default_rng(3).normal(0, 0.3, (batch, 2, CHUNK)).astype(np.float32))


def assert_same_output(network: torch.nn.Module, expected: torch.Tensor, audio: torch.Tensor) -> None:
    """On the device unmix chose for the network (the GPU where there is one); the reference ran on the CPU."""
    with torch.no_grad():
        got = network(audio.to(next(network.parameters()).device)).cpu()
    assert got.shape == expected.shape
    assert float(expected.abs().max()) > 1e-3, "a reference that returns silence would prove nothing"
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def reference_with_zero_dc(reference: torch.nn.Module, audio: torch.Tensor) -> torch.Tensor:
    """The reference's output with the 0 Hz bin of its masked spectrum zeroed, as MSST's zero_dc does.

    The inverse STFT is linear, so zeroing a bin subtracts that bin's own inverse STFT: the mix's
    0 Hz bin times the reference's mask for it. The mask estimator's output is (batch, frames,
    features), features ordered (bin, channel, real/imaginary), so bin 0 is the first 2 * channels.
    """
    masks = []
    hook = reference.mask_estimators[0].register_forward_hook(lambda module, inputs, output: masks.append(output))
    with torch.no_grad():
        output = reference(audio)
    hook.remove()
    batch, channels, samples = audio.shape
    frames = masks[0].shape[1]
    dc_mask = torch.view_as_complex(masks[0][..., :2 * channels].reshape(batch, frames, channels, 2))
    n_fft, hop, window_length = STFT["stft_n_fft"], STFT["stft_hop_length"], STFT["stft_win_length"]
    window = torch.hann_window(window_length)
    spectrum = torch.stft(audio.reshape(-1, samples), n_fft, hop, window_length, window=window, return_complex=True)
    only_dc = torch.zeros_like(spectrum)
    only_dc[:, 0, :] = spectrum[:, 0, :] * dc_mask.permute(0, 2, 1).reshape(batch * channels, frames)
    dc_part = torch.istft(only_dc, n_fft, hop, window_length, window=window).reshape(batch, channels, -1)
    return output - dc_part


# ---- the imported network computes the reference's output -------------------------------------------------------


@pytest.mark.slow
def test_a_bs_roformer_computes_what_the_reference_computes(tmp_path):
    reference = bs_reference()
    configuration, checkpoint = write_msst_files(
        tmp_path, msst_yaml({**NETWORK, "stereo": True, "num_stems": 1, "freqs_per_bands": BANDS,
                             "linear_transformer_depth": 0, "zero_dc": False}),
        reference.state_dict())
    result = run_unmix("import", "msst", "--config", str(configuration), "--checkpoint", str(checkpoint),
                       "--output", str(tmp_path / "run"), "--target", "vocals", env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stderr
    parameters = sum(parameter.numel() for parameter in reference.parameters() if parameter.requires_grad)
    assert "torch:bs-roformer" in result.stdout and "'vocals'" in result.stdout and f"{parameters:,}" in result.stdout
    audio = mix()
    with torch.no_grad():
        expected = reference(audio)
    assert_same_output(imported_network(tmp_path / "run"), expected, audio)


@pytest.mark.slow
def test_the_chosen_stem_of_a_multi_stem_model(tmp_path):
    reference = bs_reference(stems=2, seed=2)
    configuration, checkpoint = write_msst_files(
        tmp_path, msst_yaml({**NETWORK, "stereo": True, "num_stems": 2, "freqs_per_bands": BANDS, "zero_dc": False},
                            instruments=("vocals", "other"), target=None),
        reference.state_dict())
    run = import_run(configuration, checkpoint, tmp_path / "run", "--target", "other")
    audio = mix()
    with torch.no_grad():
        expected = reference(audio)[:, 1]
    assert_same_output(imported_network(run), expected, audio)
    assert json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])["collection"]["target"] == "other"


@pytest.mark.slow
def test_a_mel_roformer_computes_what_the_reference_computes(tmp_path):
    """The reference lays out its mel bands with librosa; unmix computes them itself."""
    reference = mel_reference()
    configuration, checkpoint = write_msst_files(
        tmp_path, msst_yaml({**NETWORK, "stereo": True, "num_stems": 1, "num_bands": 8, "sample_rate": SAMPLE_RATE,
                             "zero_dc": False}),
        reference.state_dict())
    run = import_run(configuration, checkpoint, tmp_path / "run")
    audio = mix()
    with torch.no_grad():
        expected = reference(audio)
    assert_same_output(imported_network(run), expected, audio)
    assert json.loads((run / "model.json").read_text())["model"] == "mel-roformer"


# ---- the run folder works with unmix's commands ------------------------------------------------------------------


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, Path]:
    """A BS-RoFormer run imported as MSST leaves one after training, and a tiny stereo collection at its rate.

    MSST's training checkpoints wrap the weights ("model_state_dict", with DataParallel's "module." before
    every name), and its YAML files leave zero_dc out, which MSST's default turns on.
    """
    folder = tmp_path_factory.mktemp("msst")
    reference = bs_reference()
    wrapped = {"epoch": 3, "best_metric": 7.5,
               "model_state_dict": {f"module.{key}": value for key, value in reference.state_dict().items()}}
    configuration, checkpoint = write_msst_files(
        folder / "msst", msst_yaml({**NETWORK, "stereo": True, "freqs_per_bands": BANDS}), wrapped)
    run = import_run(configuration, checkpoint, folder / "imported")
    collection = write_tiny_collection(folder / "collection", songs=3, seconds=1.0, sample_rate=SAMPLE_RATE,
                                       stereo=True)
    return run, collection


@pytest.mark.slow
def test_msst_defaults_a_training_checkpoint_and_zero_dc(imported):
    run, _ = imported
    audio = mix()
    assert_same_output(imported_network(run), reference_with_zero_dc(bs_reference(), audio), audio)


@pytest.mark.slow
def test_the_run_folder_has_what_a_trained_run_has(imported):
    run, _ = imported
    assert sorted(path.name for path in (run / "weights").iterdir()) == ["best.pt", "last.pt"]
    model = json.loads((run / "model.json").read_text())
    assert model["backend"] == "torch" and model["model"] == "bs-roformer" and model["input_shape"] == [2, CHUNK]
    settings = json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])
    assert settings["transformation"]["name"] == "waveform"
    assert settings["transformation"]["options"]["size"] == CHUNK
    assert settings["transformation"]["options"]["step"] == CHUNK // 4  # MSST's chunk_size // num_overlap
    assert settings["collection"]["sample_rate"] == SAMPLE_RATE and settings["collection"]["stereo"] is True
    options = settings["training"]["model"]["options"]
    assert options["freqs_per_bands"] == list(BANDS) and options["dim"] == 16
    assert json.loads((run / "state.json").read_text())["epoch"] == 0
    environment = json.loads((run / "environment.json").read_text())
    assert environment["imported"]["from"] == "Music-Source-Separation-Training"
    assert not [path for path in run.parent.iterdir() if path.name.startswith(".")], "no staging folder is left"


@pytest.mark.slow
@pytest.mark.e2e
def test_predict_evaluate_and_fine_tune_use_the_imported_run(imported, tmp_path):
    run, collection = imported
    song = tmp_path / "song.wav"
    samples = np.random.default_rng(1).normal(0, 0.1, (int(1.5 * SAMPLE_RATE), 2)).astype(np.float32)
    soundfile.write(song, samples, SAMPLE_RATE)
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(tmp_path / "out"),
                       env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stderr
    target, rate = soundfile.read(tmp_path / "out" / "song_vocals.wav")
    assert rate == SAMPLE_RATE and target.shape == samples.shape and np.abs(target).max() > 0

    result = run_unmix("evaluate", "--run-folder", str(run), "--collection", str(collection),
                       "--test-data-count", "1", env=ENVIRONMENT, timeout=180)
    assert result.returncode == 0, result.stderr
    assert (run / "evaluation.json").is_file()

    fine_tuning = tmp_path / "fine-tune.jsonc"
    fine_tuning.write_text(json.dumps({
        "base": str(run / "configuration.jsonc"),
        "collection": {"folder": str(collection), "validation_ratio": 0.4},
        "training": {"initial_weights": str(run), "epoch": {"count": 1}, "batch_size": 2},
    }))
    result = run_unmix("train", str(fine_tuning), "--workingdir", str(tmp_path / "work"), env=ENVIRONMENT,
                       timeout=300)
    assert result.returncode == 0, result.stderr
    (tuned,) = (tmp_path / "work" / "runs").iterdir()
    recorded = json.loads((tuned / "model.json").read_text())["initial_weights"]
    assert recorded == str((run / "weights" / "best.pt").resolve())


# ---- refusals: one line, exit code 2, nothing written ------------------------------------------------------------


def refused(tmp_path: Path, configuration: Path, checkpoint: Path, *fragments: str, extra: tuple[str, ...] = ()):
    output = tmp_path / "refused-run"
    result = run_unmix("import", "msst", "--config", str(configuration), "--checkpoint", str(checkpoint),
                       "--output", str(output), *extra, env=ENVIRONMENT, timeout=180)
    assert_one_line_error(result, *fragments)
    assert not output.exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".refused-run")]


def test_a_yaml_python_tag_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    configuration, checkpoint = write_msst_files(tmp_path / "msst", msst_yaml({**NETWORK, "freqs_per_bands": BANDS}),
                                                 bs_reference().state_dict())
    configuration.write_text(configuration.read_text().replace(
        "  dim: 16", f"  dim: !!python/object/apply:os.system ['touch {marker}']"))
    refused(tmp_path, configuration, checkpoint, str(configuration), "!!python/object/apply:os.system")
    assert not marker.exists()


def test_a_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    configuration, checkpoint = write_msst_files(tmp_path / "msst", msst_yaml({**NETWORK, "freqs_per_bands": BANDS}),
                                                 {"state_dict": bs_reference().state_dict(), "note": Note()})
    refused(tmp_path, configuration, checkpoint, f"checkpoint '{checkpoint}' holds more than tensors",
            "unmix loads only weights", "Note")


class Note:
    """Any class of the writer's: unpickling it means importing and calling the writer's code."""


@pytest.mark.slow
def test_weights_that_do_not_fit_are_refused_naming_the_first_key(tmp_path):
    weights = bs_reference().state_dict()
    del weights["final_norm.gamma"]
    configuration, checkpoint = write_msst_files(tmp_path / "msst", msst_yaml({**NETWORK, "freqs_per_bands": BANDS}),
                                                 weights)
    refused(tmp_path, configuration, checkpoint, "missing key 'final_norm.gamma'")


@pytest.mark.parametrize(("model", "extra", "fragments"), [
    ({**NETWORK, "freqs_per_bands": BANDS, "num_stems": 2}, ("--target", "drums"),
     ("--target 'drums'", "vocals, other")),
    ({**NETWORK, "num_channels": 4}, (), ("neither a BS-RoFormer", "--model-type")),
    ({**NETWORK, "freqs_per_bands": BANDS, "linear_transformer_depth": 1}, (), ("model.linear_transformer_depth",)),
    ({**NETWORK, "freqs_per_bands": BANDS, "hidden_size": 3}, (), ("model.hidden_size",)),
    ({**NETWORK, "freqs_per_bands": (2, 2)}, (), ("freqs_per_bands", "33")),
], ids=["target-not-a-stem", "not-a-roformer", "linear-attention", "unknown-key", "bands-miss-bins"])
def test_configurations_unmix_cannot_import_are_refused(tmp_path, model, extra, fragments):
    configuration, checkpoint = write_msst_files(tmp_path / "msst", msst_yaml(model, target=None),
                                                 bs_reference().state_dict())
    refused(tmp_path, configuration, checkpoint, str(configuration), *fragments, extra=extra)


def test_missing_files_a_yaml_without_model_and_an_existing_output_are_refused(tmp_path):
    configuration, checkpoint = write_msst_files(tmp_path / "msst", "audio:\n  chunk_size: 2048\n",
                                                 bs_reference().state_dict())
    refused(tmp_path, configuration, checkpoint, str(configuration), "'model:'")
    refused(tmp_path, tmp_path / "absent.yaml", checkpoint, "absent.yaml", "does not exist")
    configuration.write_text(msst_yaml({**NETWORK, "freqs_per_bands": BANDS}))
    refused(tmp_path, configuration, tmp_path / "absent.ckpt", "absent.ckpt", "does not exist")
    existing = tmp_path / "existing"
    existing.mkdir()
    result = run_unmix("import", "msst", "--config", str(configuration), "--checkpoint", str(checkpoint),
                       "--output", str(existing), env=ENVIRONMENT, timeout=60)
    assert_one_line_error(result, str(existing), "already exists")
    assert list(existing.iterdir()) == []


@pytest.mark.parametrize(("written", "window"), [({}, 2048), ({"stft_win_length": 4096}, 4096)])
def test_a_yaml_without_a_window_gets_msst_default_window_not_n_fft(written, window):
    from unmix.torch.msst import unmix_configuration

    section = {"dim": 8, "depth": 1, "stft_n_fft": 4096, **written}
    msst = {"model": section, "audio": {"chunk_size": 44100}}
    source, _ = unmix_configuration(msst, section, Path("vocals.yaml"), "bs_roformer", "vocals")
    assert source["training"]["model"]["options"]["stft_win_length"] == window
