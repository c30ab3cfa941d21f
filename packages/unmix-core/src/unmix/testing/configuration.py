"""A training configuration small enough to train, predict and evaluate in seconds on a CPU.

Short windows (16 frames of a 256-point STFT), small batches, two epochs and one held-out test
song: a plugin's test exercises every stage of a real run (cache, training, checkpoints,
prediction, evaluation) without waiting for any of them. The file inherits unmix's master
configuration like any other, so whatever the test does not set has its usual default.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import soundfile

__all__ = ["tiny_configuration"]

_DEFAULT_RATE = 8000


def tiny_configuration(folder: str | Path, collection: str | Path, /, *, backend: str, model: str,
                       options: Mapping[str, Any] | None = None, epochs: int = 2,
                       **overrides: Mapping[str, Any]) -> Path:
    """Write `<folder>/tiny-<model>.jsonc` training `backend`:`model` on `collection`, and return its path.

    :param collection: a folder of songs, e.g. from `write_tiny_collection`; the configuration
        takes its sample rate and channel count from the first wav file in it, so nothing is resampled.
    :param options: `training.model.options`.
    :param overrides: configuration sections merged over the tiny settings, key by key:
        `training={"batch_size": 8}`, `transformation={"name": "mask", "options": {"step": 4}}`,
        `collection={"test_data_count": 2}` (`collection` here is the section; the positional
        argument is the folder).
    """
    folder, collection = Path(folder), Path(collection)
    sample_rate, stereo = _audio_format(collection)
    configuration: dict[str, Any] = {
        "environment": {"name": f"tiny-{model}"},
        "collection": {"folder": str(collection), "sample_rate": sample_rate, "stereo": stereo, "song_limit": 0,
                       "validation_ratio": 0.25, "test_data_count": 1, "test_frequency": 0},
        "spectrogram_generation": {"fft_length": 256},
        "transformation": {"name": "train_window_predict_mask", "options": {"size": 16, "step": 16}},
        "training": {"backend": backend, "model": {"name": model, "options": dict(options or {})},
                     "epoch": {"count": epochs}, "batch_size": 4, "limit_items_per_song": 0,
                     "optimizer": {"name": "adam", "lr": 0.01},
                     "callbacks": {"tensorboard": {"enabled": False}, "early_stopping": {"enabled": False}}},
    }
    _merge(configuration, overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tiny-{model.replace(':', '-')}.jsonc"
    path.write_text("// A tiny training run for a plugin's tests (unmix.testing.tiny_configuration)\n"
                    + json.dumps(configuration, indent=2) + "\n", encoding="utf-8")
    return path


def _audio_format(collection: Path) -> tuple[int, bool]:
    """(sample rate, stereo) of the collection's first wav file; 8 kHz mono when it has none."""
    first = next(iter(sorted(path for path in collection.rglob("*.wav") if ".unmix-cache" not in path.parts)), None)
    if first is None:
        return _DEFAULT_RATE, False
    info = soundfile.info(str(first))
    return int(info.samplerate), info.channels > 1


def _merge(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
