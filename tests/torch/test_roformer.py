"""The band-split and mel-band RoFormers (`unmix.torch.roformer`): shapes, reconstruction, sizes, options, the kit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import assert_one_line_error, build_network, run_unmix
from tests.training_fixtures import write_seed_collection
from unmix.core import ModelError, load_configuration
from unmix.core.plugins import plugin_manager
from unmix.torch import roformer_options
from unmix.torch.roformer import BSRoformer, MelBandRoformer

CONFIGURATIONS = Path(__file__).resolve().parents[2] / "configurations"

TINY = {"dim": 16, "depth": 1, "heads": 2, "dim_head": 8, "stft_n_fft": 256, "stft_hop_length": 64}
TINY_BS = {**TINY, "freqs_per_bands": [1] * 16 + [4] * 8 + [81]}
TINY_MEL = {**TINY, "num_bands": 12, "sample_rate": 8000}
MODELS = {"torch:bs-roformer": TINY_BS, "torch:mel-roformer": TINY_MEL}


def tiny(model: str, channels: int, samples: int = 3000, **options):
    return build_network(model, {**MODELS[model], **options}, (channels, samples))


def parameters(network: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in network.parameters() if parameter.requires_grad)


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 2])
def test_output_has_the_input_shape_for_a_length_off_the_hop(model, channels):
    torch.manual_seed(0)
    network = tiny(model, channels).eval()
    audio = torch.randn(3, channels, 3001) * 0.1  # 3001 = 46 hops of 64 and 57 samples
    with torch.no_grad():
        out = network(audio)
    assert out.shape == audio.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("window", [0, 160])
def test_the_stft_and_its_inverse_reconstruct_the_input(model, channels, window):
    network = tiny(model, channels, zero_dc=False, stft_win_length=window)
    audio = torch.randn(2, channels, 2501)
    restored = network.waveform(network.spectrogram(audio), audio.shape[-1])
    assert torch.allclose(restored, audio, atol=1e-5)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_mixed_precision_keeps_the_stft_in_float32(model):
    """Under autocast (the kit's mixed_precision) the transformers compute in bfloat16, the STFT, the mask
    product and the inverse STFT in float32; gradients reach every trained weight."""
    network = tiny(model, 2)
    audio = torch.randn(2, 2, 3001) * 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = network(audio)
    assert out.shape == audio.shape and out.dtype == torch.float32
    out.square().mean().backward()
    assert all(parameter.grad is not None for parameter in network.parameters() if parameter.requires_grad)


def _mask_of_one(network: torch.nn.Module) -> None:
    """Last layers that make every band's complex mask 1 + 0j: GLU(value, gate) = value * sigmoid(gate)."""
    with torch.no_grad():
        for mlp in network.mask_estimators[0].to_freqs:
            last = mlp[0][-1]
            half = last.out_features // 2
            last.weight.zero_()
            value = torch.zeros(half)
            value[0::2] = 1.0  # (real, imaginary) pairs
            last.bias.copy_(torch.cat([value, torch.full((half,), 40.0)]))


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 2])
def test_a_mask_of_one_returns_the_mix(model, channels):
    """Band order, stereo interleaving, complex layout and (mel) the averaging of overlapping bands all
    line up: a mask of 1 everywhere gives back the input."""
    torch.manual_seed(1)
    network = tiny(model, channels, zero_dc=False).eval()
    _mask_of_one(network)
    audio = torch.randn(2, channels, 3001) * 0.3
    with torch.no_grad():
        assert torch.allclose(network(audio), audio, atol=1e-5)


def test_the_mel_model_averages_the_masks_of_the_bands_that_cover_a_bin():
    network = tiny("torch:mel-roformer", 2)
    rows, entries, frames = network.bins * 2, len(network.freq_indices), 3
    per_band = torch.randn(1, entries, frames, 2)
    expected, counts = torch.zeros(1, rows, frames, 2), torch.zeros(rows)
    for position, row in enumerate(network.freq_indices.tolist()):
        expected[:, row] += per_band[:, position]
        counts[row] += 1
    assert counts.min() == 1 and counts.max() == 2
    mask = per_band.transpose(1, 2).reshape(1, frames, entries * 2)
    assert torch.allclose(network.band_mask(mask), expected / counts[None, :, None, None])


def test_zero_dc_clears_the_0_hz_bin_only():
    """A tone on bin 20 passes a mask of one untouched; a constant loses its 0 Hz bin (a Hann window spreads
    it over bins 0 and 1, so a third of it is left)."""
    network = tiny("torch:bs-roformer", 1).eval()
    _mask_of_one(network)
    tone = torch.sin(2 * torch.pi * 20 * torch.arange(3000) / 256).reshape(1, 1, -1)
    with torch.no_grad():
        assert torch.allclose(network(tone)[..., 256:-256], tone[..., 256:-256], atol=1e-5)
        constant = network(torch.full((1, 1, 3000), 0.5))
    assert torch.allclose(constant[..., 256:-256], torch.tensor(0.5 / 3), atol=1e-5)


def _count(model: str, options: dict, input_shape: tuple[int, int]) -> int:
    registered = plugin_manager().registry("models").get(model)
    chosen = registered.read_options(options, input_shape)
    chosen.pop("mixed_precision")
    with torch.device("meta"):
        return parameters(registered.network_factory()(chosen, input_shape))


@pytest.mark.parametrize(("configuration", "expected"), [
    ("gpu/bs-roformer.jsonc", 42_630_028),
    ("cpu/roformer-small.jsonc", 757_270),
])
def test_parameter_counts_of_the_shipped_configurations(configuration, expected):
    settings = load_configuration(CONFIGURATIONS / configuration).settings
    model = f"{settings.training.backend}:{settings.training.model.name}"
    channels = 2 if settings.collection.stereo else 1
    input_shape = (channels, settings.transformation.options.size)
    assert _count(model, settings.training.model.options, input_shape) == expected


@pytest.mark.parametrize(("model", "channels", "expected"), [
    ("torch:bs-roformer", 1, 71_978),
    ("torch:bs-roformer", 2, 109_904),
    ("torch:mel-roformer", 1, 87_336),
    ("torch:mel-roformer", 2, 154_956),
])
def test_parameter_counts_of_tiny_models(model, channels, expected):
    assert parameters(tiny(model, channels)) == expected


def test_the_defaults_are_the_papers_sizes():
    """dim 384, depth 12, 62 bands for the band-split model; 60 mel bands for the other (stereo 44.1 kHz)."""
    assert _count("torch:bs-roformer", {}, (2, 88200)) == 98_194_764
    assert _count("torch:mel-roformer", {}, (2, 88200)) == 110_219_652
    assert len(roformer_options.BS_ROFORMER_BANDS) == 62 and sum(roformer_options.BS_ROFORMER_BANDS) == 1025


def test_mel_bands_are_librosas_slaney_filterbank_bands():
    """Bins per band of librosa.filters.mel(sr=44100, n_fft=2048, n_mels=60) > 0, with MSST's first and last bin
    forced in: what the Mel-band RoFormer checkpoints of MSST were trained with."""
    bands = roformer_options.mel_bands(44100, 2048, 60)
    assert bands.sum(axis=1).tolist() == [
        7, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 9, 9, 9, 10, 10, 11, 13, 13, 13, 15, 16, 17,
        19, 20, 20, 22, 24, 26, 28, 29, 31, 33, 36, 39, 41, 44, 47, 50, 54, 57, 61, 66, 71, 76, 80, 86, 93, 99,
        105, 113, 122, 130]
    assert bands.any(axis=0).all()
    first = np.flatnonzero(bands[1])
    assert first.tolist() == list(range(first[0], first[0] + 6))  # contiguous, overlapping its neighbours
    assert bands[0, first].any() and bands[2, first].any()


def _refusal(model: str, options: dict, input_shape=(2, 44100)) -> str:
    with pytest.raises(ModelError) as error:
        plugin_manager().registry("models").get(model).read_options(options, input_shape)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bands_that_do_not_add_up_to_the_bins_are_one_line():
    message = _refusal("torch:bs-roformer", {"freqs_per_bands": [2, 2, 1020]})
    assert "freqs_per_bands adds up to 1024 bins, but stft_n_fft 2048 gives 1025" in message
    assert "freqs_per_bands must be a list" in _refusal("torch:bs-roformer", {"freqs_per_bands": [1025]})
    assert "must be a list" in _refusal("torch:bs-roformer", {"stft_n_fft": 256, "stft_hop_length": 64,
                                                                  "freqs_per_bands": [128, 0.5, 0.5]})


def test_unmix_config_check_names_the_bands_in_one_line(tmp_path):
    path = tmp_path / "wrong-bands.jsonc"
    path.write_text(json.dumps({
        "base": str(CONFIGURATIONS / "cpu" / "roformer-small.jsonc"),
        "training": {"model": {"options": {"freqs_per_bands": [4] * 128}}},
    }))
    assert_one_line_error(run_unmix("config", "check", str(path)),
                          "training.model.options.freqs_per_bands adds up to 512 bins, but stft_n_fft 1024 gives 513")


def test_other_option_mistakes_are_one_line():
    assert "dim_head is 15; it must be even" in _refusal("torch:mel-roformer", {"dim_head": 15})
    assert "stft_win_length is 4096; it must be between 2 and stft_n_fft" in _refusal(
        "torch:mel-roformer", {"stft_win_length": 4096})
    assert "stft_hop_length is 1500" in _refusal("torch:bs-roformer", {"stft_hop_length": 1500})
    assert "hold no STFT bin" in _refusal("torch:mel-roformer", {"num_bands": 200, "stft_n_fft": 512,
                                                                   "stft_hop_length": 128})
    assert "at least stft_n_fft (2048) samples" in _refusal("torch:bs-roformer", {}, (1, 1000))
    assert "waveform network" in _refusal("torch:bs-roformer", {}, (1025, 64, 1))


def test_the_mask_estimators_follow_msst_depths():
    """MSST's band-split MLP has mask_estimator_depth linear layers, its mel-band MLP one more."""
    bs, mel = tiny("torch:bs-roformer", 1), tiny("torch:mel-roformer", 1)
    linear = [sum(isinstance(layer, torch.nn.Linear) for layer in network.mask_estimators[0].to_freqs[0][0])
              for network in (bs, mel)]
    assert (type(bs), type(mel)) == (BSRoformer, MelBandRoformer)
    assert linear == [2, 2]  # the band-split default 2; the mel-band default 1, plus one


def test_state_dict_names_are_msst_names():
    network = tiny("torch:bs-roformer", 2, depth=2, time_transformer_depth=2, mask_estimator_depth=3)
    names = set(network.state_dict())
    assert {
        "band_split.to_features.0.0.gamma", "band_split.to_features.24.1.weight", "band_split.to_features.24.1.bias",
        "layers.1.0.layers.1.0.norm.gamma", "layers.1.0.layers.1.0.to_qkv.weight",
        "layers.1.0.layers.1.0.to_gates.weight", "layers.1.0.layers.1.0.to_gates.bias",
        "layers.1.0.layers.1.0.to_out.0.weight",
        "layers.1.0.layers.1.0.rotary_embed.freqs", "layers.0.1.layers.0.1.net.0.gamma",
        "layers.0.1.layers.0.1.net.1.weight", "layers.0.1.layers.0.1.net.4.bias", "final_norm.gamma",
        "mask_estimators.0.to_freqs.0.0.0.weight", "mask_estimators.0.to_freqs.0.0.2.weight",
        "mask_estimators.0.to_freqs.24.0.4.bias",
    } <= names
    assert not any(name.startswith("layers.0.0.norm") for name in names)
    mel = set(tiny("torch:mel-roformer", 1).state_dict())
    assert "layers.0.0.norm.gamma" in mel and "final_norm.gamma" not in mel


@pytest.mark.slow
def test_a_tiny_roformer_trains_resumes_and_separates_through_the_kit(tmp_path):
    from unmix.core import create_engine, separate
    from unmix.core.training.driver import train

    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=1.5)
    configuration = {
        "environment": {"name": "tiny-roformer"},
        "collection": {"folder": str(collection), "sample_rate": 8000, "song_limit": 0, "validation_ratio": 0.25,
                       "test_data_count": 1, "test_frequency": 0},
        "transformation": {"name": "waveform", "options": {"size": 4000, "step": 2000, "normalizer": ""}},
        "training": {"epoch": {"count": 1}, "batch_size": 2, "limit_items_per_song": 1, "metrics": [],
                     "loss_function": "multi_resolution_stft", "optimizer": {"name": "adam", "lr": 0.001},
                     "backend": "torch", "model": {"name": "bs-roformer", "options": TINY_BS},
                     "callbacks": {"tensorboard": {"enabled": False}}},
    }
    path = tmp_path / "tiny-roformer.jsonc"
    path.write_text(json.dumps(configuration))
    run = train(path, working_directory=tmp_path).path
    assert sorted(item.name for item in (run / "weights").iterdir()) == ["best.pt", "last.pt"]
    model = json.loads((run / "model.json").read_text())
    assert model["input_shape"] == [1, 4000] and model["trainable_parameters"] == 71_978

    saved = json.loads((run / "configuration.jsonc").read_text().split("\n", 1)[1])
    saved["training"]["epoch"]["count"] = 2
    (run / "configuration.jsonc").write_text("// one more epoch\n" + json.dumps(saved))
    train(run / "configuration.jsonc", working_directory=tmp_path, resume=run)
    assert json.loads((run / "state.json").read_text())["epoch"] == 2

    mix = np.random.default_rng(0).normal(0, 0.1, (1, 9001)).astype(np.float32)  # (channels, samples)
    target, rest = separate(create_engine(run), mix, 8000)
    assert target.shape == rest.shape == mix.shape
    np.testing.assert_allclose(target + rest, mix, atol=1e-6)
