"""`GainModel`: the smallest model that really learns a mask, behind core's `SeparationModel` protocol.

The mask is one gain per frequency bin and channel, the same for every frame: enough to learn
"the target lives in these frequencies", and small enough to read in one sitting. It trains
with Adam on the seed's mask loss |target - input * mask| (L11_loss sums it, L11_loss_mean
averages it), saves everything it needs to resume in one .npz file, written atomically, and
turns every user mistake into an `UnmixError` (one line on the command line).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from unmix.core.errors import UnmixError

Batch = tuple[np.ndarray, np.ndarray]
OPTIONS = {"initial_gain": 1.0}
LOSSES = ("L11_loss", "L11_loss_mean")
METRICS = ("mean_pred", "max_pred")
BETAS, EPSILON = (0.9, 0.999), 1e-7


class GainModel:
    backend = "numpy"
    checkpoint_suffix = ".npz"

    def __init__(self, settings: Any, input_shape: tuple[int, int, int]) -> None:
        training = settings.training
        options = dict(training.model.options)
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UnmixError(f"training.model.options.{unknown[0]}: model 'example-gain' has no such option; "
                             f"its options are: {', '.join(OPTIONS)}")
        if training.loss_function not in LOSSES:
            raise UnmixError(f"training.loss_function '{training.loss_function}': model 'example-gain' trains with "
                             f"{' or '.join(LOSSES)}")
        if training.optimizer.name.lower() != "adam":
            raise UnmixError(f"training.optimizer.name '{training.optimizer.name}': model 'example-gain' uses adam")
        unknown_metrics = [name for name in training.metrics if name not in METRICS]
        if unknown_metrics:
            raise UnmixError(f"training.metrics: unknown metric '{unknown_metrics[0]}'; known: {', '.join(METRICS)}")
        bins, _frames, channels = input_shape
        self.input_shape = tuple(input_shape)
        self.summed = training.loss_function == "L11_loss"
        self.metrics = list(training.metrics)
        self.gains = np.full((bins, 1, channels), float(options.get("initial_gain", 1.0)))
        self.moments = np.zeros_like(self.gains), np.zeros_like(self.gains)
        self.steps = 0
        self._learning_rate = float(training.optimizer.lr)

    def trainable_parameters(self) -> int:
        return int(self.gains.size)

    def summary(self) -> str:
        bins, _, channels = self.gains.shape
        return f"example-gain: one gain per frequency bin and channel ({bins} x {channels} = {self.gains.size})"

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(value)

    def train_epoch(self, batches: Iterable[Batch], steps: int,
                    on_batch: Callable[[int, dict[str, float]], None]) -> dict[str, float]:
        losses = []
        for step, (inputs, targets) in zip(range(steps), batches, strict=False):
            residual = targets - inputs * self.gains[None]
            losses.append(self._loss(residual))
            gradient = np.mean(-np.sign(residual) * inputs, axis=(0, 2), keepdims=True)[0]
            self._adam(gradient)
            on_batch(step, {"loss": float(np.mean(losses))})
        return self._report(losses, "training")

    def evaluate(self, batches: Iterable[Batch], steps: int) -> dict[str, float]:
        losses = [self._loss(targets - inputs * self.gains[None])
                  for _, (inputs, targets) in zip(range(steps), batches, strict=False)]
        return self._report(losses, "validation")

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.gains[None], np.shape(inputs)).astype(np.float32)

    def save_checkpoint(self, path: Path) -> None:
        """Everything resuming needs, in one file that appears whole or not at all."""
        path = Path(path)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
        os.close(handle)
        try:
            np.savez(temporary, gains=self.gains, first=self.moments[0], second=self.moments[1],
                     steps=self.steps, learning_rate=self._learning_rate)
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)

    def load_checkpoint(self, path: Path) -> None:
        try:
            with np.load(path) as saved:
                gains, first, second = saved["gains"], saved["first"], saved["second"]
                steps, learning_rate = int(saved["steps"]), float(saved["learning_rate"])
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise UnmixError(f"checkpoint '{path}' is not an example-gain checkpoint ({error}); "
                             "use one from a run's weights/ folder") from None
        if gains.shape != self.gains.shape:
            raise UnmixError(f"checkpoint '{path}' has {gains.shape} gains, this model needs {self.gains.shape}: "
                             "fft_length or collection.stereo differ")
        self.gains, self.moments, self.steps, self._learning_rate = gains, (first, second), steps, learning_rate

    def _loss(self, residual: np.ndarray) -> float:
        return float(np.sum(np.abs(residual)) if self.summed else np.mean(np.abs(residual)))

    def _adam(self, gradient: np.ndarray) -> None:
        self.steps += 1
        first = BETAS[0] * self.moments[0] + (1 - BETAS[0]) * gradient
        second = BETAS[1] * self.moments[1] + (1 - BETAS[1]) * gradient**2
        self.moments = first, second
        corrected = np.sqrt(1 - BETAS[1] ** self.steps) / (1 - BETAS[0] ** self.steps)
        self.gains = self.gains - self._learning_rate * corrected * first / (np.sqrt(second) + EPSILON)

    def _report(self, losses: list[float], split: str) -> dict[str, float]:
        if not losses:
            raise UnmixError(f"no {split} batches: the {split} data is empty")
        report = {"loss": float(np.mean(losses))}
        if "mean_pred" in self.metrics:
            report["mean_pred"] = float(self.gains.mean())
        if "max_pred" in self.metrics:
            report["max_pred"] = float(self.gains.max())
        return report
