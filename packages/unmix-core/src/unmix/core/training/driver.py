"""The training driver: configuration -> data -> model plugin -> epochs with callbacks -> run folder.

It knows no framework: the model comes from a `register_models` plugin and is driven through
`unmix.core.interfaces.SeparationModel`. After every epoch the last checkpoint and state.json are
written (atomically), so a run stopped by Ctrl-C, SIGKILL or a power cut resumes with
`unmix train --resume RUN`, losing at most the epoch in progress. Ctrl-C stops at the next batch
and writes a checkpoint first.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from tqdm import tqdm

from unmix.core.config.loader import (
    LoadedConfiguration,
    check_plugin_names,
    load_configuration,
)
from unmix.core.data.training_data import TrainingData, prepare_training_data, with_collection_target
from unmix.core.errors import UnmixError
from unmix.core.files import WriteError, write_error
from unmix.core.interfaces import Metrics, SeparationModel
from unmix.core.models.factory import build_model, describe_model, installed_models
from unmix.core.plugins import plugin_manager
from unmix.core.runs import (
    RunFolder,
    RunFolderError,
    create_run_folder,
    open_run_folder,
    remove_unfinished_run,
    training_lock,
)
from unmix.core.training.callbacks import LAST, TrainingState, build_callbacks, forget_results_after, watched_value
from unmix.core.training.fine_tuning import fine_tune, initial_weights_source

log = logging.getLogger("unmix")

EpochHook = Callable[[int, Metrics, TrainingState, "TrainingContext"], None]


class TrainingInterrupted(UnmixError):
    """Ctrl-C during training: the checkpoint is written, the run can be resumed."""


class EmptySplitError(UnmixError):
    """No training (or validation) windows: nothing to learn from."""


@attrs.define
class TrainingContext:
    """What an epoch hook (such as the evaluation's accuracy tests) may use."""

    run: RunFolder
    loaded: LoadedConfiguration
    model: SeparationModel
    data: TrainingData


def check_before_data(loaded: LoadedConfiguration) -> None:
    """Every name and model option the configuration uses, checked before minutes of decoding."""
    installed_models(loaded)
    for warning in check_plugin_names(loaded, plugin_manager()):
        log.warning("%s", warning)


def train(configuration: str | Path, working_directory: str | Path = ".", resume: str | Path | None = None,
          data: TrainingData | None = None) -> RunFolder:
    """Train one configuration in a new run folder, or continue the run folder `resume`."""
    if resume is not None:
        run = open_run_folder(resume)
        _refuse_if_being_trained(run)
        loaded = run.load_configuration()
        state = TrainingState(**run.read_json(run.state_file))
    else:
        loaded = with_collection_target(load_configuration(configuration))
        run = None
        state = TrainingState()
    # Only a new run starts from other weights; a resumed one has its own checkpoint.
    initial_weights = initial_weights_source(loaded) if resume is None else None
    settings = loaded.settings
    check_before_data(loaded)
    data = data if data is not None else prepare_training_data(loaded)
    if len(data.training) == 0:
        raise EmptySplitError(
            f"{loaded.path}: the training split has no windows ({data.describe()}); add songs to "
            f"collection.folder or lower collection.test_data_count / validation_ratio"
        )
    model = build_model(loaded, data.input_shape)
    fine_tuning = fine_tune(model, loaded, initial_weights)
    if run is None:
        run = create_run_folder(loaded, Path(working_directory))
    with training_lock(run), _full_disk_stops_cleanly(run), _run_log(run, settings.environment.log_file):
        if resume is not None:
            _restore(model, run, state)
            csv_logger = settings.training.callbacks.csv_logger
            forget_results_after(run.file(csv_logger.file_name), csv_logger.separator, state.epoch)
        else:
            run.write_json(run.model_file, {**describe_model(model, loaded, data.input_shape), **fine_tuning.record()})
            log.info("run folder: %s", run.path)
            log.info("data: %s", data.describe())
            log.info("model %s (%s), trainable parameters: %s", settings.training.model.name, model.backend,
                     f"{model.trainable_parameters():,}")
            log.info("%s", model.summary())
        for line in fine_tuning.describe(model):
            log.info("%s", line)
        if state.learning_rate is None:
            state.learning_rate = model.learning_rate
        _fit(model, run, loaded, data, state)
    return run


def _restore(model: SeparationModel, run: RunFolder, state: TrainingState) -> None:
    description = run.read_json(run.model_file)
    if description.get("backend") != model.backend:
        raise RunFolderError(
            f"'{run.path}' was trained with the {description.get('backend')} backend but its configuration now "
            f"builds a {model.backend} model; install the matching unmix backend"
        )
    checkpoint = run.folder("weights") / f"{LAST}{model.checkpoint_suffix}"
    if not checkpoint.is_file():
        raise RunFolderError(f"'{run.path}' has no checkpoint to resume from ({checkpoint.name} is missing)")
    model.load_checkpoint(checkpoint)
    if state.learning_rate is not None:
        model.learning_rate = state.learning_rate
    log.info("resuming %s after epoch %d", run.path, state.epoch)


def _fit(model: SeparationModel, run: RunFolder, loaded: LoadedConfiguration, data: TrainingData,
         state: TrainingState) -> None:
    settings = loaded.settings
    validating = data.validation is not None and len(data.validation) > 0
    callbacks = build_callbacks(settings.training, model, run, validating)
    context = TrainingContext(run=run, loaded=loaded, model=model, data=data)
    hooks: list[EpochHook] = []
    if settings.collection.test_frequency > 0 and data.test_songs:
        from unmix.core.evaluation.evaluate import accuracy_hook

        hooks.append(accuracy_hook())
    total_epochs = settings.training.epoch.count
    if state.stop_reason is not None or state.epoch >= total_epochs:
        log.info("nothing to do: %s", state.stop_reason or f"all {total_epochs} epochs are done")
        return
    time_limit = 60.0 * settings.training.time_limit_minutes
    seconds_before, loop_started = state.training_seconds, time.monotonic()

    def seconds_trained() -> float:
        return seconds_before + time.monotonic() - loop_started

    def time_is_up() -> bool:
        return bool(time_limit) and seconds_trained() >= time_limit

    with _interrupt_flag() as interrupted:
        for epoch in range(state.epoch + 1, total_epochs + 1):
            started = time.monotonic()
            logs = _train_one_epoch(model, data, epoch, total_epochs, interrupted, time_is_up)
            if interrupted():
                _save_interrupted(model, run, state)
            if validating:
                validation = model.evaluate(data.validation.epoch(epoch), len(data.validation))
                logs.update({f"val_{key}": value for key, value in validation.items()})
            logs["lr"] = model.learning_rate
            state.epoch = epoch
            state.training_seconds = seconds_trained()
            if time_is_up():
                state.stop_reason = (f"time limit of {settings.training.time_limit_minutes:g} minutes reached "
                                     f"({state.training_seconds:.0f} s of epochs)")
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs, state)
            state.learning_rate = model.learning_rate
            run.write_json(run.state_file, attrs.asdict(state))
            for hook in hooks:
                hook(epoch, logs, state, context)
            shown = ", ".join(f"{key} {value:.5g}" for key, value in sorted(logs.items()))
            log.info("epoch %d/%d (%.1f s): %s", epoch, total_epochs, time.monotonic() - started, shown)
            if interrupted():
                _save_interrupted(model, run, state)
            if state.stop_reason:
                log.info("%s", state.stop_reason)
                run.write_json(run.state_file, attrs.asdict(state))
                break
    monitor = watched_value(settings.training.callbacks.model_checkpoint.monitor, validating)
    log.info("best %s %.5g at epoch %s; checkpoints in %s", monitor,
             state.best_value if state.best_value is not None else float("nan"), state.best_epoch,
             run.folder("weights"))


class _StopEpoch(Exception):
    """Raised from the progress callback to leave the backend's epoch loop at the next batch."""


def _train_one_epoch(model: SeparationModel, data: TrainingData, epoch: int, total_epochs: int,
                     interrupted: Callable[[], bool], time_is_up: Callable[[], bool]) -> Metrics:
    """One pass over the training windows; Ctrl-C or the time limit leaves it at the next batch."""
    steps = len(data.training)
    progress = tqdm(total=steps, desc=f"epoch {epoch}/{total_epochs}", unit="batch", leave=False,
                    dynamic_ncols=True)
    running: Metrics = {}

    def on_batch(step: int, metrics: Metrics) -> None:
        running.update(metrics)
        progress.update(1)
        if "loss" in metrics:
            progress.set_postfix(loss=f"{metrics['loss']:.4g}")
        if interrupted() or time_is_up():
            raise _StopEpoch

    try:
        return dict(model.train_epoch(data.training.epoch(epoch), steps, on_batch))
    except _StopEpoch:
        return dict(running)
    finally:
        progress.close()


def _save_interrupted(model: SeparationModel, run: RunFolder, state: TrainingState) -> None:
    model.save_checkpoint(run.folder("weights") / f"{LAST}{model.checkpoint_suffix}")
    state.learning_rate = model.learning_rate
    run.write_json(run.state_file, attrs.asdict(state))
    raise TrainingInterrupted(
        f"interrupted after epoch {state.epoch}; checkpoint written. Resume with: unmix train --resume {run.path}"
    )


@contextlib.contextmanager
def _interrupt_flag() -> Iterator[Callable[[], bool]]:
    """First Ctrl-C asks for a clean stop at the next batch; a second one stops at once."""
    requested = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        if requested["stop"]:
            raise KeyboardInterrupt
        requested["stop"] = True
        log.warning("Ctrl-C: stopping at the next batch and writing a checkpoint (press again to abort)")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield lambda: False
        return
    try:
        yield lambda: requested["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


def _refuse_if_being_trained(run: RunFolder) -> None:
    """Fail before minutes of data preparation, not after; the lock held while training is what counts."""
    with training_lock(run):
        pass


@contextlib.contextmanager
def _full_disk_stops_cleanly(run: RunFolder) -> Iterator[None]:
    """A full disk ends training with one line naming the file instead of a traceback.

    Checkpoints and state.json are written atomically, so the last good ones stay and the run
    resumes once there is space; a new run that never finished an epoch has nothing to resume
    and is removed.
    """
    try:
        yield
    except WriteError as error:
        raise _next_step_after(error, run) from None
    except OSError as error:
        converted = write_error(Path(error.filename) if error.filename else run.path, error)
        if converted is None:
            raise
        raise _next_step_after(converted, run) from None


def _next_step_after(error: WriteError, run: RunFolder) -> WriteError:
    if run.state_file.is_file():
        return error.then(f"resume with: unmix train --resume {run.path}")
    remove_unfinished_run(run)
    return error.then("run the training again")


class _RunLogFile(logging.FileHandler):
    """logs.txt, which must not print a logging traceback when the disk fills up: the write that
    matters (checkpoint, state.json) then fails with its own one-line error."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handleError(record)


@contextlib.contextmanager
def _run_log(run: RunFolder, log_file: str) -> Iterator[None]:
    """Mirror the run's log messages into its logs.txt."""
    handler = _RunLogFile(run.file(log_file), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    previous_level = log.level
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(previous_level)
