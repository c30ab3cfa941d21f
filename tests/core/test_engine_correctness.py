"""The prediction engine gives exactly the mask applied to the whole song's STFT.

The test model (tests/magnitude_mask_plugin.py) masks every spectrogram point with
m / (m + c[bin, channel]) of its own un-normalised magnitude, so the right target for any song is
that mask applied to one STFT of the whole song (same fft_length, hop, periodic Hann and centring
as `unmix.core.data.audio.stft`), inverted with `istft`. Whatever path the engine takes (windows,
batches, segments of `prediction.chunk_seconds`, song edges, resampling, mono items of a stereo
song, ffmpeg decoding), its written stems must match that reference.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests import magnitude_mask_plugin
from tests.helpers import clean_environment, run_unmix
from tests.plugin_fixtures import install_plugin_distribution
from tests.training_fixtures import write_seed_collection
from unmix.core import api
from unmix.core.data.audio import istft, load_audio, resample, stft
from unmix.core.interfaces import ExportOptions
from unmix.core.separation.prediction import Engine, exporter_for, separate_file

FFT_LENGTH = 256
HOP = 64
BINS = FFT_LENGTH // 2 + 1
# Only float32 rounding separates engine and reference: measured below 1.1e-7 on songs peaking near
# 0.5, including the streaming soxr against the one-shot soxr when the rates differ.
EXACT = 1e-6
PLUGIN_NAME = "magnitude-mask-test"


def register_magnitude_mask_model() -> None:
    from unmix.core.plugins import plugin_manager

    manager = plugin_manager()
    if PLUGIN_NAME not in manager.infos:
        manager.register(magnitude_mask_plugin, PLUGIN_NAME)


def configuration_data(collection: Path, rate: int = 8000, stereo: bool = False,
                       transform: str = "train_window_predict_mask", size: int = 16, step: int = 16,
                       chunk_seconds: float = 1.0, context_frames: int = 0) -> dict:
    return {
        "environment": {"name": "engine-correctness"},
        "collection": {"folder": str(collection), "sample_rate": rate, "stereo": stereo, "validation_ratio": 0.25,
                       "test_data_count": 1, "test_frequency": 0},
        "spectrogram_generation": {"fft_length": FFT_LENGTH, "hop_length": HOP},
        "transformation": {"name": transform, "options": {"size": size, "step": step, "normalizer": ""}},
        "training": {"epoch": {"count": 1}, "batch_size": 4, "backend": "numpy",
                     "model": {"name": "magnitude-mask", "options": {"context_frames": context_frames}},
                     "callbacks": {"tensorboard": {"enabled": False}}},
        "prediction": {"chunk_seconds": chunk_seconds, "batch_size": 3},
    }


def random_constants(channels: int, seed: int) -> np.ndarray:
    """Log-uniform in [0.1, 10]: around the magnitudes of the test songs, so masks span (0, 1)."""
    rng = np.random.default_rng(seed)
    return (10 ** rng.uniform(-1, 1, (BINS, channels))).astype(np.float32)


def write_checkpoint(path: Path, constants: np.ndarray) -> Path:
    np.savez(path, constants=constants, learning_rate=0.1, steps_taken=1)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder with a small collection that the configurations name."""
    folder = tmp_path_factory.mktemp("magnitude-mask")
    write_seed_collection(folder / "collection", songs=4, seconds=1.0)
    return folder


def engine_with(folder: Path, constants: np.ndarray, **options) -> Engine:
    """An engine from a checkpoint holding `constants` and a configuration with `options`."""
    register_magnitude_mask_model()
    configuration = folder / "model.jsonc"
    configuration.write_text(json.dumps(configuration_data(folder.parent / "collection", **options)))
    weights = write_checkpoint(folder / "weights.npz", constants)
    return api.create_engine_from_weights(weights, configuration)


def song(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """Different tones and noise per channel, and a length that is no multiple of the hop."""
    rng = np.random.default_rng(seed)
    time_axis = np.arange(int(seconds * rate) + 13) / rate
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * time_axis)
    channels_audio = [0.3 * envelope * np.sin(2 * np.pi * (300 + 170 * c) * time_axis)
                      + 0.1 * np.sin(2 * np.pi * 1250 * (c + 1) * time_axis) + rng.normal(0, 0.05, time_axis.size)
                      for c in range(channels)]
    return np.asarray(channels_audio, dtype=np.float32)


def reference_target(samples: np.ndarray, constants: np.ndarray, context_frames: int = 0) -> np.ndarray:
    """The mask applied to the whole song's STFT, at the model's rate.

    A mono model masks each channel with its one column of constants; a stereo model hearing a
    mono song masks it with both columns and the engine averages the two estimates.
    """
    spectrum = stft(samples, FFT_LENGTH, HOP)
    magnitude = magnitude_mask_plugin.frame_average(np.abs(spectrum), context_frames, axis=-1)
    song_channels, model_channels = samples.shape[0], constants.shape[1]
    if model_channels == song_channels:
        masks = magnitude / (magnitude + constants.T[:, :, None])
    elif model_channels == 1:
        masks = magnitude / (magnitude + constants[None, :, 0:1])
    else:
        masks = np.mean([magnitude / (magnitude + constants[None, :, c:c + 1]) for c in range(model_channels)],
                        axis=0)
    return istft((masks * spectrum).astype(np.complex64), HOP, length=samples.shape[-1])


def reference_through_model_rate(samples: np.ndarray, rate: int, model_rate: int,
                                 constants: np.ndarray) -> np.ndarray:
    at_model_rate = resample(samples, rate, model_rate)
    target = resample(reference_target(at_model_rate, constants), model_rate, rate)
    return np.pad(target, ((0, 0), (0, max(0, samples.shape[-1] - target.shape[-1]))))[:, :samples.shape[-1]]


def separate_through_files(engine: Engine, audio: np.ndarray, rate: int, folder: Path) -> tuple[np.ndarray, ...]:
    """Target and rest as the streaming engine writes them (float wav keeps them bit for bit)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "song.wav"
    soundfile.write(path, audio.T, rate, subtype="FLOAT")
    result = separate_file(engine, path, folder / "out", exporter_for("wav"), ExportOptions(bit_depth="float"),
                           "{song}_{stem}.{ext}", progress=False)
    target, target_rate = soundfile.read(result.files["vocals"], dtype="float32", always_2d=True)
    rest, _ = soundfile.read(result.files["rest"], dtype="float32", always_2d=True)
    assert target_rate == rate
    return target.T, rest.T


def assert_matches(actual: np.ndarray, expected: np.ndarray, atol: float) -> None:
    assert actual.shape == expected.shape
    worst = np.abs(actual - expected).max()
    assert worst <= atol, f"largest difference {worst:.3g} (allowed {atol:.3g})"


def test_a_trained_run_separates_a_whole_song_like_its_full_stft(models, tmp_path):
    """Song start and end: the first and last frames have fewer windows and STFT frames around them."""
    from unmix.core.training.driver import train

    register_magnitude_mask_model()
    configuration = tmp_path / "tiny.jsonc"
    configuration.write_text(json.dumps(configuration_data(models / "collection")))
    run = train(configuration, working_directory=tmp_path).path
    constants = random_constants(1, seed=1)
    write_checkpoint(run / "weights" / "best.npz", constants)
    engine = api.create_engine(run)
    audio = song(2.1, 8000, 1, seed=1)
    target, rest = api.separate(engine, audio, 8000)
    reference = reference_target(audio, constants)
    assert_matches(target, reference, EXACT)
    assert_matches(target + rest, audio, 1e-6)


@pytest.mark.parametrize(("transform", "size", "step", "context_frames"), [
    ("train_window_predict_mask", 16, 16, 0),
    ("train_window_predict_mask_hann", 16, 4, 0),
    ("mask", 16, 8, 0),  # the model returns only the centre `step` columns of each window
    ("mask", 64, 16, 24),  # each mask also depends on 24 frames either side: segments need that context
])
def test_streamed_segments_of_a_stereo_song_match_the_full_stft(models, tmp_path, transform, size, step,
                                                                context_frames):
    constants = random_constants(2, seed=2)
    engine = engine_with(tmp_path, constants, stereo=True, transform=transform, size=size, step=step,
                         chunk_seconds=1.0, context_frames=context_frames)
    audio = song(7.3, 8000, 2, seed=2)  # several 1-second segments, each with its context
    target, rest = separate_through_files(engine, audio, 8000, tmp_path)
    assert_matches(target, reference_target(audio, constants, context_frames), EXACT)
    assert_matches(target + rest, audio, 1e-6)


def test_a_mono_model_masks_each_channel_of_a_stereo_song_on_its_own(models, tmp_path):
    constants = random_constants(1, seed=3)
    engine = engine_with(tmp_path, constants, stereo=False, chunk_seconds=1.0)
    audio = song(3.2, 8000, 2, seed=3)
    target, _ = separate_through_files(engine, audio, 8000, tmp_path)
    assert_matches(target, reference_target(audio, constants), EXACT)


def test_a_stereo_model_hears_a_mono_song_on_both_sides(models, tmp_path):
    constants = random_constants(2, seed=4)
    engine = engine_with(tmp_path, constants, stereo=True, chunk_seconds=1.0)
    audio = song(2.2, 8000, 1, seed=4)
    target, _ = separate_through_files(engine, audio, 8000, tmp_path)
    assert_matches(target, reference_target(audio, constants), EXACT)


@pytest.mark.parametrize(("song_rate", "model_rate", "channels"), [(44100, 22050, 2), (44100, 8000, 1),
                                                                   (8000, 22050, 2)])
def test_a_song_at_another_rate_is_masked_at_the_model_rate(models, tmp_path, song_rate, model_rate, channels):
    """The reference resamples the whole song at once; the engine resamples block by block with a
    streaming soxr, which agrees with the one-shot soxr to float32 rounding."""
    constants = random_constants(channels, seed=5)
    engine = engine_with(tmp_path, constants, rate=model_rate, stereo=channels == 2, chunk_seconds=1.0)
    audio = song(2.6, song_rate, channels, seed=5)
    target, rest = separate_through_files(engine, audio, song_rate, tmp_path)
    assert_matches(target, reference_through_model_rate(audio, song_rate, model_rate, constants), EXACT)
    assert_matches(target + rest, audio, 1e-6)


def ffmpeg_encode(source: Path, destination: Path, codec: list[str]) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), *codec, str(destination)],
                   check=True, capture_output=True)
    return destination


@pytest.mark.slow
@pytest.mark.parametrize(("extension", "codec"), [("m4a", ["-c:a", "aac", "-b:a", "96k"]),
                                                  ("mp3", ["-c:a", "libmp3lame", "-b:a", "64k"])])
def test_unmix_predict_on_an_ffmpeg_encoded_song_masks_its_decoded_samples(models, tmp_path, extension, codec):
    constants = random_constants(2, seed=6)
    configuration = tmp_path / "model.jsonc"
    configuration.write_text(json.dumps(configuration_data(models / "collection", stereo=True)))
    weights = write_checkpoint(tmp_path / "weights.npz", constants)
    site = install_plugin_distribution(tmp_path / "site", "unmix-magnitude-mask-test", "0.1",
                                       {"unmix_magnitude_mask_test": Path(magnitude_mask_plugin.__file__).read_text()},
                                       {PLUGIN_NAME: "unmix_magnitude_mask_test"})
    wav = tmp_path / "source.wav"
    soundfile.write(wav, song(2.4, 8000, 2, seed=6).T, 8000, subtype="FLOAT")
    encoded = ffmpeg_encode(wav, tmp_path / f"song.{extension}", codec)

    result = run_unmix("predict", "--weights", str(weights), "--configuration", str(configuration),
                       "--song", str(encoded), "--output", str(tmp_path / "out"), "--bit-depth", "float",
                       env=clean_environment(PYTHONPATH=str(site)))
    assert result.returncode == 0, result.stderr

    decoded = load_audio(encoded)
    assert decoded.sample_rate == 8000
    target, _ = soundfile.read(tmp_path / "out" / "song_vocals.wav", dtype="float32", always_2d=True)
    rest, _ = soundfile.read(tmp_path / "out" / "song_rest.wav", dtype="float32", always_2d=True)
    assert_matches(target.T, reference_target(decoded.samples, constants), EXACT)
    assert_matches(target.T + rest.T, decoded.samples, 1e-6)
