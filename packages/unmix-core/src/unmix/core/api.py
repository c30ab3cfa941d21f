"""The Python API: separate audio from your own code.

```python
from unmix.core.api import create_engine, separate
engine = create_engine("runs/20261125-101500-guitar_full")
target, rest = separate(engine, samples, sample_rate)   # samples: (channels, n) or (n,)
```

`create_engine` and `run_prediction` keep the seed's `api/prediction.py` shape (docs/original-system.md §6.4)
for code written against it; unlike the seed they load the best checkpoint, and several engines
can live side by side (no process-global configuration).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unmix.core.data.audio import check_finite, istft, resample
from unmix.core.errors import AudioError, UnmixError
from unmix.core.separation.engine import separate_spectrogram
from unmix.core.separation.prediction import Engine, engine_from_model_file, engine_from_run, engine_from_weights

__all__ = ["Engine", "create_engine", "create_engine_from_weights", "run_prediction", "separate"]


def create_engine(run_folder: str | Path, batch_size: int | None = None) -> Engine:
    """An engine for a run folder made by `unmix train`, with its best checkpoint, or for a model file
    made by `unmix export` (a .onnx file runs on onnxruntime alone when unmix-onnx is installed)."""
    if Path(run_folder).is_file():
        return engine_from_model_file(run_folder, batch_size)
    return engine_from_run(run_folder, batch_size)


def create_engine_from_weights(weights: str | Path, configuration: str | Path,
                               batch_size: int | None = None) -> Engine:
    return engine_from_weights(weights, configuration, batch_size)


def run_prediction(engine: Engine, mix: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The seed's call: complex STFTs of the mix (one (bins, frames) array per channel, at the
    model's rate, fft_length and hop) in; the target and the rest as audio (channels, samples) out.
    A waveform model never sees a spectrogram: give it samples with `separate`."""
    if engine.transform.kind == "waveform":
        raise UnmixError("run_prediction() takes a mix STFT, but this run's model is a waveform model "
                         "(transformation.name 'waveform'); call separate(engine, samples, sample_rate) instead")
    spectrogram = np.asarray(np.stack(list(mix)) if isinstance(mix, list) else mix, dtype=np.complex64)
    if spectrogram.ndim == 2:
        spectrogram = spectrogram[None]
    target = separate_spectrogram(spectrogram, engine.transform, engine.predict, engine.separation_settings)
    hop = engine.settings.hop_length
    target_audio = istft(target, hop)
    mix_audio = istft(spectrogram, hop)
    return target_audio, mix_audio - target_audio


def separate(engine: Engine, samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The target and the rest of a waveform, at its own rate, channels and length.

    `samples` is (channels, n) or (n,), all finite (NaN or infinity raises AudioError); the result
    has the same shape. For files, and songs longer
    than memory allows, use `unmix predict` or `unmix.core.separation.prediction.separate_file`, which stream.
    """
    audio = np.asarray(samples, dtype=np.float32)
    check_finite(audio, "samples given to separate()")
    _check_layout(audio)
    mono_input = audio.ndim == 1
    audio = audio[None] if mono_input else audio
    at_model_rate = resample(audio, sample_rate, engine.sample_rate) if sample_rate != engine.sample_rate else audio
    target = engine.separate_samples(at_model_rate)
    if sample_rate != engine.sample_rate:
        target = resample(target, engine.sample_rate, sample_rate)
    target = _fit_length(target, audio.shape[-1])
    rest = audio - target
    return (target[0], rest[0]) if mono_input else (target, rest)


def _check_layout(audio: np.ndarray) -> None:
    """Refuse (n, channels) arrays, as soundfile reads them: taken as (channels, n) they would be n
    one-sample channels, separated for minutes into nonsense instead of failing."""
    if audio.ndim > 2 or (audio.ndim == 2 and audio.shape[0] > audio.shape[1]):
        raise AudioError(f"samples given to separate() have shape {audio.shape}; give (channels, n) or (n,): "
                         "transpose an array read as (n, channels), e.g. soundfile.read(...)[0].T")


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    if samples.shape[-1] >= length:
        return samples[..., :length]
    return np.pad(samples, [(0, 0)] * (samples.ndim - 1) + [(0, length - samples.shape[-1])])
