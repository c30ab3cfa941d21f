"""The `onnxruntime` runtime: separating with a file from `unmix export`, without TensorFlow or PyTorch.

Core finds it by the file's suffix (`unmix.core.Runtime`), reads the configuration the file carries
(`metadata.CONFIGURATION`) and builds its ordinary engine around `OnnxModel`, so streaming, resampling,
stem writers and `--peak` work exactly as with the framework. Threads: OMP_NUM_THREADS when set (as
for PyTorch and TensorFlow), else onnxruntime's one per physical core; the session uses the execution
providers its onnxruntime build has (CUDA, CoreML, DirectML before the CPU).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from unmix.core.config.schema import Configuration
from unmix.core.errors import ModelError, UnmixError, first_line
from unmix.core.interfaces import Batch, Metrics
from unmix.onnx import metadata
from unmix.onnx.spectrogram import istft, stft


class OnnxRuntime:
    """What `register_runtimes` registers: reads .onnx files written by `unmix export`.

    Opening a session optimises the whole graph, and separating asks for a file's configuration just
    before it loads the file: the session opened for the one is kept for the other.
    """

    suffix = ".onnx"

    def __init__(self) -> None:
        self._opened: tuple[Path, Any] | None = None

    def read_configuration(self, path: Path) -> dict[str, Any]:
        session = open_session(path)
        self._opened = (path, session)
        return json.loads(read_metadata(path, session)[metadata.CONFIGURATION])

    def load(self, path: Path, settings: Configuration) -> OnnxModel:
        opened, self._opened = self._opened, None
        session = opened[1] if opened is not None and opened[0] == path else open_session(path)
        return OnnxModel(path, session, read_metadata(path, session))


def open_session(path: Path) -> Any:
    """An inference session on the providers this onnxruntime build has; a file it cannot read is one line."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = session_threads()
    # Memory patterns are planned per input shape, and the engine's last batch of a song is smaller than
    # the rest: with them a small RoFormer's `unmix predict` peaked at 1.8 GB, without them at 1.1 GB
    # (PyTorch: 0.7 GB), at about the same speed (benchmarks/bench_runtimes.py).
    options.enable_mem_pattern = False
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=onnxruntime.get_available_providers())
    except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
        raise UnmixError(f"model file '{path}' is not an ONNX model onnxruntime can read ({first_line(error)}); "
                         "write one with `unmix export --run-folder RUN --format onnx`") from None


def session_threads() -> int:
    """OMP_NUM_THREADS when it is set to a number, as PyTorch and TensorFlow read it, so one setting governs
    every engine; else 0, onnxruntime's default of one thread per physical core."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 0


def read_metadata(path: Path, session: Any) -> dict[str, str]:
    """The file's unmix metadata; a foreign ONNX file, or one of a newer format, is refused in one line."""
    found = dict(session.get_modelmeta().custom_metadata_map)
    if metadata.CONFIGURATION not in found:
        raise UnmixError(f"model file '{path}' is an ONNX model that unmix did not export (it has no unmix "
                         "metadata); export a run with `unmix export --run-folder RUN --format onnx`")
    if found.get(metadata.FORMAT) != metadata.FORMAT_VERSION:
        raise UnmixError(f"model file '{path}' has unmix export format {found.get(metadata.FORMAT)!r}, which this "
                         f"unmix-onnx (format {metadata.FORMAT_VERSION}) does not read; install the unmix-onnx that "
                         f"matches unmix {found.get(metadata.UNMIX_VERSION, '?')}, which exported it")
    return found


class OnnxModel:
    """An exported network behind core's `SeparationModel`: it predicts, and refuses to train."""

    backend = "onnxruntime"
    checkpoint_suffix = ".onnx"

    def __init__(self, path: Path, session: Any, found: Mapping[str, str]) -> None:
        self.path = path
        self.session = session
        self.metadata = dict(found)
        self.graph: dict[str, Any] = json.loads(found[metadata.GRAPH])
        self.input_shape = tuple(json.loads(found[metadata.INPUT_SHAPE]))
        self._input = session.get_inputs()[0].name

    def trainable_parameters(self) -> int:
        return int(self.metadata.get(metadata.PARAMETERS, 0))

    def summary(self) -> str:
        version = self.metadata.get(metadata.UNMIX_VERSION, "?")
        return (f"{self.metadata[metadata.MODEL]} exported from run {self.metadata.get(metadata.RUN, '?')} "
                f"(unmix {version}), {self.trainable_parameters():,} parameters, "
                f"on onnxruntime ({', '.join(self.session.get_providers())}); graph: {self.graph['graph']}")

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        if len(inputs) == 0:
            return np.zeros((0, *self.input_shape), dtype=np.float32)
        if self.graph["graph"] == "masked_spectrogram":
            return self._predict_through_stft(inputs)
        return self.session.run(None, {self._input: inputs})[0]

    def _predict_through_stft(self, chunks: np.ndarray) -> np.ndarray:
        """(batch, channels, samples) -> the STFT with rows bin by bin, channels interleaved -> graph -> inverse."""
        settings = self.graph["stft"]
        batch, channels, samples = chunks.shape
        spectrum = stft(chunks.reshape(batch * channels, samples), settings)
        bins, frames = spectrum.shape[1:]
        by_bin = spectrum.reshape(batch, channels, bins, frames).transpose(0, 2, 1, 3)
        rows = by_bin.reshape(batch, bins * channels, frames)
        real = np.stack((rows.real, rows.imag), axis=-1).astype(np.float32)
        masked = self.session.run(None, {self._input: real})[0].astype(np.float64)
        target = (masked[..., 0] + 1j * masked[..., 1]).reshape(batch, bins, channels, frames).transpose(0, 2, 1, 3)
        if settings["zero_dc"]:
            target[:, :, 0] = 0
        audio = istft(target.reshape(batch * channels, bins, frames), settings, samples)
        return audio.reshape(batch, channels, samples).astype(np.float32)

    # ---- training: an exported file only separates ----------------------------------------

    def _refuse(self, what: str) -> ModelError:
        return ModelError(f"'{self.path}' is an exported model, which only separates; {what} with the run folder "
                          f"it was exported from ({self.metadata.get(metadata.RUN, 'see unmix.run in its metadata')})")

    def train_epoch(self, batches: Iterable[Batch], steps: int, on_batch: Callable[[int, Metrics], None]) -> Metrics:
        raise self._refuse("train")

    def evaluate(self, batches: Iterable[Batch], steps: int) -> Metrics:
        raise self._refuse("compute validation losses")

    @property
    def learning_rate(self) -> float:
        raise self._refuse("train")

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        raise self._refuse("train")

    def save_checkpoint(self, path: Path) -> None:
        raise self._refuse("write checkpoints")

    def load_checkpoint(self, path: Path) -> None:
        raise self._refuse("load checkpoints")
