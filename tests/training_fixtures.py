"""Small real collections and configurations for training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile

from tests.plugin_fixtures import install_plugin_distribution

GAIN_PLUGIN_SOURCE = (Path(__file__).parent / "gain_model_plugin.py").read_text()


def write_seed_collection(folder: Path, songs: int = 8, seconds: float = 2.0, sample_rate: int = 8000,
                          target: str = "vocals") -> Path:
    """Song folders in the unmixio layout: a harmonic target and a noisy rest, different per song."""
    rng = np.random.default_rng(7)
    time_axis = np.arange(int(seconds * sample_rate)) / sample_rate
    for index in range(songs):
        song = folder / f"song{index:02d}"
        song.mkdir(parents=True)
        pitch = 220.0 * 2 ** (index / 12)
        harmonic = sum(np.sin(2 * np.pi * pitch * k * time_axis) / k for k in (1, 2, 3))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * time_axis + index)
        rest = rng.normal(0, 0.1, time_axis.size) + 0.2 * np.sin(2 * np.pi * 55 * time_axis)
        soundfile.write(song / f"{target}_song{index:02d}.wav", (0.3 * harmonic * envelope).astype(np.float32),
                        sample_rate)
        soundfile.write(song / f"rest_song{index:02d}.wav", rest.astype(np.float32), sample_rate)
    return folder


def write_configuration(path: Path, collection: Path, model: str, epochs: int = 3, backend: str = "numpy",
                        **model_options) -> Path:
    configuration = {
        "environment": {"name": "test"},
        "collection": {"folder": str(collection), "sample_rate": 8000, "song_limit": 0, "validation_ratio": 0.25,
                       "test_data_count": 1, "test_frequency": 0},
        "spectrogram_generation": {"fft_length": 256},
        "transformation": {"name": "train_window_predict_mask", "options": {"size": 16, "step": 16}},
        "training": {"epoch": {"count": epochs}, "batch_size": 4, "limit_items_per_song": 0,
                     "optimizer": {"name": "adam", "lr": 0.5},
                     "backend": backend, "model": {"name": model, "options": model_options},
                     "callbacks": {"tensorboard": {"enabled": False}}},
    }
    path.write_text("// a tiny training run for tests\n" + json.dumps(configuration, indent=2))
    return path


def gain_plugin_path(folder: Path) -> str:
    """A site folder whose entry point registers the gain-mask test model, for `unmix` subprocesses."""
    site = install_plugin_distribution(folder, "unmix-gain-test", "0.1", {"unmix_gain_test": GAIN_PLUGIN_SOURCE},
                                       {"gain-test": "unmix_gain_test"})
    return str(site)


def set_gain_checkpoint(run_path: Path, gain: float) -> None:
    """Give a trained gain-mask run a mask that is `gain` everywhere (1: identity, 0: silence)."""
    for name in ("best.npz", "last.npz"):
        path = run_path / "weights" / name
        with np.load(path) as saved:
            values = dict(saved)
        values["gains"] = np.full_like(values["gains"], gain)
        np.savez(path, **values)


def register_gain_model() -> None:
    """Make the gain-mask test model known to this process's plugin manager (once)."""
    from tests import gain_model_plugin
    from unmix.core.plugins import plugin_manager

    manager = plugin_manager()
    if "gain-test" not in manager.infos:
        manager.register(gain_model_plugin, "gain-test")


def train_gain_run(folder: Path, songs: int = 4, seconds: float = 2.0, epochs: int = 1) -> Path:
    """A finished run of the gain-mask model on a small collection written into `folder`."""
    from unmix.core.training.driver import train

    register_gain_model()
    collection = write_seed_collection(folder / "collection", songs=songs, seconds=seconds)
    configuration = write_configuration(folder / "tiny.jsonc", collection, "gain-mask", epochs=epochs)
    return train(configuration, working_directory=folder).path
