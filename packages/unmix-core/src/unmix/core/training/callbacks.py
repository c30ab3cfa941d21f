"""What happens at the end of each epoch: results.csv, checkpoints, early stopping, learning-rate
reduction and the loss plot. Each callback keeps its own counters in the shared `TrainingState`,
which is saved with every checkpoint so that a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import attrs

from unmix.core.config.schema import Training
from unmix.core.files import atomic_path, write_atomically
from unmix.core.interfaces import Metrics, SeparationModel
from unmix.core.runs import RunFolder

BEST = "best"
LAST = "last"


@attrs.define
class TrainingState:
    """Counters that must survive a resume; saved to state.json after every epoch."""

    epoch: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    early_stopping_best: float | None = None
    epochs_without_improvement: int = 0
    epochs_on_plateau: int = 0
    plateau_best: float | None = None
    learning_rate: float | None = None
    stop_reason: str | None = None
    # Wall time spent in epochs so far, across resumes: what training.time_limit_minutes is measured against.
    training_seconds: float = 0.0


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return not math.isnan(value)
    if mode == "max":
        return value > best + min_delta
    return value < best - min_delta


def monitor_mode(monitor: str, mode: str) -> str:
    """Keras's "auto": larger is better for accuracies and SDRs, smaller for losses."""
    if mode != "auto":
        return mode
    return "max" if any(word in monitor for word in ("acc", "sdr", "sir", "sar")) else "min"


def _say_what_is_watched(watchers: dict[str, str], validating: bool) -> None:
    replaced = [f"{name} watches {watched_value(monitor, validating)} instead of {monitor}"
                for name, monitor in watchers.items() if watched_value(monitor, validating) != monitor]
    if replaced:
        logging.getLogger("unmix").warning(
            "no validation songs (collection.validation_ratio gives none), so %s: values of the training data, "
            "which keep improving as the model overfits; add songs or raise validation_ratio", "; ".join(replaced))


class ResultsCsv:
    """One row per epoch, the seed's `epoch;loss;...;val_loss;...` layout; appends on resume."""

    def __init__(self, path: Path, separator: str) -> None:
        self.path = path
        self.separator = separator

    def on_epoch_end(self, epoch: int, logs: Metrics, state: TrainingState) -> None:
        columns = ["epoch", *sorted(logs)]
        existing_header = self._header()
        if existing_header is not None and existing_header != columns:
            columns = existing_header + [c for c in columns if c not in existing_header]
        row = {"epoch": epoch, **logs}
        write_header = existing_header is None
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, delimiter=self.separator, extrasaction="ignore")
            if write_header:
                writer.writeheader()
            writer.writerow(row)

    def _header(self) -> list[str] | None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return None
        with self.path.open(encoding="utf-8") as handle:
            return next(csv.reader(handle, delimiter=self.separator))


def forget_results_after(path: Path, separator: str, epoch: int) -> None:
    """Drop rows of epochs later than `epoch`: a run killed between its results row and its
    checkpoint repeats that epoch on resume, and its row must not appear twice."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=separator))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if _complete_row_up_to(row, len(rows[0]), epoch)]
    if len(kept) == len(rows):
        return

    def write(temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, delimiter=separator).writerows(kept)

    write_atomically(path, write)


def _complete_row_up_to(row: list[str], columns: int, epoch: int) -> bool:
    """A row of an epoch up to `epoch` with every column: a full disk can cut the last row short."""
    if len(row) < columns:
        return False
    try:
        return float(row[0]) <= epoch
    except ValueError:
        return False


def read_results(path: Path, separator: str = ";") -> list[dict[str, Any]]:
    """The numeric columns of a results.csv or accuracy.csv (plus accuracy.csv's `type`), per row."""
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter=separator):
            parsed: dict[str, Any] = {key: number for key, value in row.items()
                                      if (number := _number(value)) is not None}
            if row.get("type"):
                parsed["type"] = row["type"]
            rows.append(parsed)
    return rows


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in ("", None) else None
    except ValueError:
        return None


class Checkpoints:
    """`weights/last` after every epoch, `weights/best` when the monitored value improves."""

    def __init__(self, model: SeparationModel, run: RunFolder, monitor: str, mode: str, keep_every: str | None):
        self.model = model
        self.folder = run.folder("weights")
        self.monitor = monitor
        self.mode = mode
        self.keep_every = keep_every

    def path(self, which: str) -> Path:
        return self.folder / f"{which}{self.model.checkpoint_suffix}"

    def on_epoch_end(self, epoch: int, logs: Metrics, state: TrainingState) -> None:
        value = logs.get(self.monitor, math.nan)
        if improved(value, state.best_value, self.mode):
            state.best_value = value
            state.best_epoch = epoch
            self.model.save_checkpoint(self.path(BEST))
        if self.keep_every:
            self.model.save_checkpoint(self.folder / self.keep_every.format(epoch=epoch))
        self.model.save_checkpoint(self.path(LAST))


class EarlyStopping:
    def __init__(self, monitor: str, min_delta: float, patience: int, mode: str) -> None:
        self.monitor = monitor
        self.min_delta = min_delta
        self.patience = patience
        self.mode = mode

    def on_epoch_end(self, epoch: int, logs: Metrics, state: TrainingState) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        if improved(value, state.early_stopping_best, self.mode, self.min_delta):
            state.early_stopping_best = value
            state.epochs_without_improvement = 0
        else:
            state.epochs_without_improvement += 1
            if state.epochs_without_improvement > self.patience:
                state.stop_reason = (f"early stopping: {self.monitor} did not improve by {self.min_delta} "
                                     f"for {self.patience} epochs")


class ReduceLearningRate:
    def __init__(self, model: SeparationModel, monitor: str, factor: float, patience: int, minimum: float,
                 mode: str) -> None:
        self.model = model
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.minimum = minimum
        self.mode = mode

    def on_epoch_end(self, epoch: int, logs: Metrics, state: TrainingState) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        if improved(value, state.plateau_best, self.mode):
            state.plateau_best = value
            state.epochs_on_plateau = 0
            return
        state.epochs_on_plateau += 1
        if state.epochs_on_plateau >= self.patience and self.model.learning_rate > self.minimum:
            self.model.learning_rate = max(self.model.learning_rate * self.factor, self.minimum)
            state.epochs_on_plateau = 0


class CosineLearningRate:
    """Half a cosine from the configured rate down to `minimum` over the training's length.

    The length is the epoch count or the time limit, whichever the training is nearer to the end of,
    so a run given 30 minutes anneals over its 30 minutes however many epochs fit in them. The rate is
    set after each epoch for the next, from the share of the training done.
    """

    def __init__(self, model: SeparationModel, start: float, minimum: float, total_epochs: int,
                 time_limit_seconds: float) -> None:
        self.model = model
        self.start = start
        self.minimum = minimum
        self.total_epochs = total_epochs
        self.time_limit_seconds = time_limit_seconds

    def share_done(self, epoch: int, state: TrainingState) -> float:
        by_time = state.training_seconds / self.time_limit_seconds if self.time_limit_seconds > 0 else 0.0
        return min(1.0, max(epoch / self.total_epochs, by_time))

    def on_epoch_end(self, epoch: int, logs: Metrics, state: TrainingState) -> None:
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.share_done(epoch, state)))
        self.model.learning_rate = self.minimum + (self.start - self.minimum) * cosine


class TensorBoardLog:
    """Epoch metrics as TensorBoard event files in the run folder, written by the backend.

    TensorBoard's file format belongs to the frameworks, so core asks the model: a backend that
    can write them offers `write_scalars(folder, epoch, values)`; for one that cannot, this says
    so once in the log instead of failing the run.
    """

    def __init__(self, model: SeparationModel, folder: Path) -> None:
        self.model = model
        self.folder = folder
        self.warned = False

    def on_epoch_end(self, epoch: int, logs: Metrics, state: TrainingState) -> None:
        write = getattr(self.model, "write_scalars", None)
        if write is None:
            if not self.warned:
                logging.getLogger("unmix").warning(
                    "training.callbacks.tensorboard is enabled but the %s backend writes no TensorBoard logs",
                    self.model.backend)
                self.warned = True
            return
        write(self.folder, epoch, logs)


class LossPlot:
    """plots/loss.png redrawn every epoch from results.csv (and accuracy.csv when tests ran)."""

    def __init__(self, run: RunFolder, results: Path, separator: str) -> None:
        self.run = run
        self.results = results
        self.separator = separator

    def on_epoch_end(self, epoch: int, logs: Metrics, state: TrainingState) -> None:
        plot_losses(self.run, self.results, self.separator)


def plot_losses(run: RunFolder, results: Path, separator: str = ";") -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_results(results, separator)
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(8, 4.5))
    epochs = [row["epoch"] for row in rows]
    for key in ("loss", "val_loss"):
        values = [row.get(key, math.nan) for row in rows]
        if not all(math.isnan(v) for v in values):
            axis.plot(epochs, values, marker="o", label=key)
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.set_title(f"{run.name}: training and validation loss")
    axis.grid(alpha=0.3)
    accuracy = [row for row in read_results(run.file("accuracy.csv"), separator)
                if row.get("type") == "model" and "epoch" in row]
    if accuracy:
        sdr_axis = axis.twinx()
        keys = [key for key in ("target_museval_sdr", "target_sdr") if any(key in row for row in accuracy)]
        for key in keys:
            epochs_tested = [row["epoch"] for row in accuracy if key in row]
            values = [row[key] for row in accuracy if key in row]
            sdr_axis.plot(epochs_tested, values, linestyle="--", marker="s", label=f"{key} (dB)")
        sdr_axis.set_ylabel("SDR (dB)")
        sdr_axis.legend(loc="upper right")
    axis.legend(loc="upper left")
    path = run.folder("plots") / "loss.png"
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
    return path


def watched_value(monitor: str, validating: bool) -> str:
    """What a callback set to watch `monitor` watches: without validation songs there is no `val_*`
    value, and the training value of the same name is the only honest stand-in."""
    if validating or not monitor.startswith("val_"):
        return monitor
    return monitor.removeprefix("val_")


def build_callbacks(training: Training, model: SeparationModel, run: RunFolder, validating: bool = True) -> list:
    """The callbacks the configuration enables, in the order they must run.

    The best and last checkpoints are always written, because prediction and resuming need them;
    `model_checkpoint.best_only: false` additionally keeps one file per epoch, named by `file_name`.
    Without validation songs (`validating` false) the callbacks that watch a `val_*` value watch
    the training value instead, and the log says so.
    """
    settings = training.callbacks
    callbacks: list = []
    if settings.csv_logger.enabled:
        callbacks.append(ResultsCsv(run.file(settings.csv_logger.file_name), settings.csv_logger.separator))
    checkpoint = settings.model_checkpoint
    mode = monitor_mode(checkpoint.monitor, checkpoint.mode)
    keep_every = None
    if checkpoint.enabled and not checkpoint.best_only:
        keep_every = Path(checkpoint.file_name).stem + model.checkpoint_suffix
    watchers = {"the best checkpoint": checkpoint.monitor}
    callbacks.append(Checkpoints(model, run, watched_value(checkpoint.monitor, validating), mode, keep_every))
    if settings.reduce_learningrate.enabled:
        reduce = settings.reduce_learningrate
        watchers["reduce_learningrate"] = reduce.monitor
        callbacks.append(ReduceLearningRate(model, watched_value(reduce.monitor, validating), reduce.factor,
                                            reduce.patience, reduce.min_learningrate,
                                            monitor_mode(reduce.monitor, "auto")))
    if settings.cosine_learningrate.enabled:
        callbacks.append(CosineLearningRate(model, training.optimizer.lr, settings.cosine_learningrate.min_learningrate,
                                            training.epoch.count, 60.0 * training.time_limit_minutes))
    if settings.early_stopping.enabled:
        early = settings.early_stopping
        watchers["early_stopping"] = early.monitor
        callbacks.append(EarlyStopping(watched_value(early.monitor, validating), early.min_delta, early.patience,
                                       monitor_mode(early.monitor, "auto")))
    _say_what_is_watched(watchers, validating)
    if settings.tensorboard.enabled:
        callbacks.append(TensorBoardLog(model, run.path / Path(settings.tensorboard.folder).name))
    if settings.csv_logger.enabled:
        callbacks.append(LossPlot(run, run.file(settings.csv_logger.file_name), settings.csv_logger.separator))
    return callbacks
