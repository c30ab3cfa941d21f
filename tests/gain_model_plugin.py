"""A real but tiny model plugin for driver tests that must not wait for TensorFlow.

One learnable gain per frequency bin and channel, trained by gradient descent on the seed's L1
mask loss mean |target - input * mask|. It learns, saves and resumes like a backend model, in
milliseconds, and is registered through the same `register_models` hook.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np

from unmix.core.errors import UnmixError
from unmix.core.files import atomic_path
from unmix.core.hookspecs import hookimpl


class GainMaskModel:
    backend = "numpy"
    checkpoint_suffix = ".npz"

    def __init__(self, settings, input_shape):
        bins, _frames, channels = input_shape
        self.gains = np.full((bins, 1, channels), 0.9, dtype=np.float64)
        self._learning_rate = float(settings.training.optimizer.lr)
        self.steps_taken = 0
        # Lets process-level tests (Ctrl-C, SIGKILL) catch a run mid-epoch, as with a real network.
        self.seconds_per_batch = float(settings.training.model.options.get("seconds_per_batch", 0.0))

    def trainable_parameters(self) -> int:
        return int(self.gains.size)

    def summary(self) -> str:
        return f"GainMaskModel: {self.gains.shape[0]} bins x {self.gains.shape[2]} channels"

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(value)

    def _loss_and_gradient(self, inputs, targets):
        residual = targets - inputs * self.gains[None]
        loss = float(np.mean(np.abs(residual)))
        gradient = np.mean(-np.sign(residual) * inputs, axis=(0, 2), keepdims=True)[0]
        return loss, gradient

    def train_epoch(self, batches, steps, on_batch):
        losses = []
        for step, (inputs, targets) in zip(range(steps), batches, strict=False):
            loss, gradient = self._loss_and_gradient(inputs, targets)
            self.gains -= self._learning_rate * gradient
            time.sleep(self.seconds_per_batch)
            self.steps_taken += 1
            losses.append(loss)
            on_batch(step, {"loss": float(np.mean(losses))})
        return {"loss": float(np.mean(losses)), "mean_pred": float(self.gains.mean())}

    def evaluate(self, batches, steps):
        losses = [self._loss_and_gradient(inputs, targets)[0]
                  for _, (inputs, targets) in zip(range(steps), batches, strict=False)]
        return {"loss": float(np.mean(losses)), "mean_pred": float(self.gains.mean())}

    def predict(self, inputs):
        return np.broadcast_to(self.gains[None], inputs.shape).astype(np.float32)

    def save_checkpoint(self, path: Path) -> None:
        with atomic_path(Path(path)) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, gains=self.gains, learning_rate=self._learning_rate, steps_taken=self.steps_taken)

    def load_checkpoint(self, path: Path) -> None:
        try:
            with np.load(path) as saved:
                self.gains = saved["gains"]
                self._learning_rate = float(saved["learning_rate"])
                self.steps_taken = int(saved["steps_taken"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise UnmixError(f"checkpoint '{path}' is corrupt ({error}); resume from another run") from None


@hookimpl
def register_models(register):
    register("numpy:gain-mask", GainMaskModel)
