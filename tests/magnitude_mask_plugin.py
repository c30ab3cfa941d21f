"""A real model plugin whose mask is known exactly, so tests can compute the engine's right answer.

The mask of every spectrogram point is a / (a + c[bin, channel]): c is a positive constant per
frequency bin and channel, and a the point's input magnitude averaged over the `context_frames`
frames on either side (model option, default 0: the point alone). It varies by bin, frame and
channel, yet depends only on the song around the point: with an un-normalised transform
(`transformation.options.normalizer` "") the right target for a whole song is that mask computed
on the song's full STFT (zeros beyond its ends) and applied to it, whichever window, segment or
batch a frame went through. A window, bin or channel mixed up anywhere in the engine, or a
segment with too little context, therefore shows in the written stems. Context needs every
predicted column to see `context_frames` real columns on each side, which only the centre-column
transforms (`mask`, `mask-ibm`) give, with context_frames <= (size - step) // 2.

The constants are fixed, not learned: training runs (so a real run folder exists) but only
measures the loss; tests write the constants they want into the checkpoint.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from unmix.core.errors import UnmixError
from unmix.core.files import atomic_path
from unmix.core.hookspecs import hookimpl


def default_constants(bins: int, channels: int) -> np.ndarray:
    """Constants that differ between neighbouring bins and between channels."""
    bin_part = 0.2 + np.arange(bins)[:, None] % 7 * 0.3
    return (bin_part * (1.0 + np.arange(channels)[None, :])).astype(np.float32)


def frame_average(magnitude: np.ndarray, context_frames: int, axis: int) -> np.ndarray:
    """The mean over each frame and its `context_frames` neighbours on both sides, zeros beyond the ends.

    Summed in float64 window by window, so that a window and a whole song give the same values.
    """
    if context_frames == 0:
        return magnitude
    padding = [(0, 0)] * magnitude.ndim
    padding[axis] = (context_frames, context_frames)
    padded = np.pad(magnitude.astype(np.float64), padding)
    width = 2 * context_frames + 1
    return np.lib.stride_tricks.sliding_window_view(padded, width, axis=axis).mean(axis=-1).astype(np.float32)


def magnitude_mask(average: np.ndarray, constants: np.ndarray) -> np.ndarray:
    """The mask for averaged magnitudes (..., bins, frames, channels) and constants (bins, channels)."""
    return average / (average + constants[:, None, :])


class MagnitudeMaskModel:
    backend = "numpy"
    checkpoint_suffix = ".npz"

    def __init__(self, settings, input_shape):
        from unmix.core.data.transforms import create_transform

        bins, _frames, channels = input_shape
        transform = create_transform(settings)
        self.output_columns = transform.output_columns
        self.predicts_mask_target = transform.training_target == "mask"
        self.constants = default_constants(bins, channels)
        self.context_frames = int(settings.training.model.options.get("context_frames", 0))
        self._learning_rate = float(settings.training.optimizer.lr)
        self.steps_taken = 0

    def trainable_parameters(self) -> int:
        return int(self.constants.size)

    def summary(self) -> str:
        return f"MagnitudeMaskModel: {self.constants.shape[0]} bins x {self.constants.shape[1]} channels"

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(value)

    def predict(self, inputs):
        average = frame_average(np.asarray(inputs, dtype=np.float32), self.context_frames, axis=2)
        return magnitude_mask(average[:, :, self.output_columns, :], self.constants).astype(np.float32)

    def _loss(self, inputs, targets):
        mask = self.predict(inputs)
        estimate = mask if self.predicts_mask_target else mask * inputs[:, :, self.output_columns, :]
        return float(np.mean(np.abs(targets - estimate)))

    def train_epoch(self, batches, steps, on_batch):
        losses = []
        for step, (inputs, targets) in zip(range(steps), batches, strict=False):
            losses.append(self._loss(inputs, targets))
            self.steps_taken += 1
            on_batch(step, {"loss": float(np.mean(losses))})
        return {"loss": float(np.mean(losses))}

    def evaluate(self, batches, steps):
        losses = [self._loss(inputs, targets) for _, (inputs, targets) in zip(range(steps), batches, strict=False)]
        return {"loss": float(np.mean(losses))}

    def save_checkpoint(self, path: Path) -> None:
        with atomic_path(Path(path)) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, constants=self.constants, learning_rate=self._learning_rate,
                     steps_taken=self.steps_taken)

    def load_checkpoint(self, path: Path) -> None:
        try:
            with np.load(path) as saved:
                constants = saved["constants"]
                self._learning_rate = float(saved["learning_rate"])
                self.steps_taken = int(saved["steps_taken"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise UnmixError(f"checkpoint '{path}' is corrupt ({error}); resume from another run") from None
        if constants.shape != self.constants.shape:
            raise UnmixError(f"checkpoint '{path}' holds constants for {constants.shape} (bins, channels), "
                             f"the configuration needs {self.constants.shape}")
        self.constants = constants.astype(np.float32)


@hookimpl
def register_models(register):
    register("numpy:magnitude-mask", MagnitudeMaskModel)
