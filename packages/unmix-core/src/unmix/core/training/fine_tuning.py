"""Fine-tuning: a new run that starts from the weights of an earlier one (`training.initial_weights`)
and may keep some of them as they are (`training.freeze`).

Only the network's weights come over. The optimiser starts fresh (no step count, no moments), the
epochs count from 1 and the learning rate is the configuration's: a fine-tuning run is a training of
its own, usually on other songs, and an optimiser state tuned to the old ones would only mislead
it. `unmix train --resume` is what continues a run with everything it had.

`training.initial_weights` names a run folder (its best checkpoint, else its last) or a checkpoint
file; a relative path is taken from the folder of the configuration file that sets it, so a
configuration and the weights beside it work from any working directory. The run's model.json
records the checkpoint file actually used (absolute) and the frozen names, so the run says where
its weights came from even after the configuration file has moved. On `--resume` the weights come
from the run's own checkpoint; only the freezing is applied again, since it is not part of it.

Both need methods a model may lack (`unmix.core.interfaces.FineTunableModel`): a configuration that asks
a model without them is one line naming the setting.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from unmix.core.config.loader import LoadedConfiguration
from unmix.core.errors import ConfigurationError, ModelError
from unmix.core.interfaces import SeparationModel
from unmix.core.runs import CONFIGURATION_FILE, RunFolder, RunFolderError

INITIAL_WEIGHTS = "training.initial_weights"
FREEZE = "training.freeze"
# The run folder's checkpoints, in the order they are preferred (training.callbacks writes both).
CHECKPOINTS = ("best", "last")


@attrs.frozen
class FineTuning:
    """What a run took from elsewhere: the checkpoint its weights came from and the names kept frozen."""

    initial_weights: Path | None = None
    frozen: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """The entries model.json gains, so that the run can be reproduced: none for an ordinary run."""
        record: dict[str, Any] = {}
        if self.initial_weights is not None:
            record["initial_weights"] = str(self.initial_weights)
        if self.frozen:
            record["frozen"] = list(self.frozen)
        return record

    def describe(self, model: SeparationModel) -> list[str]:
        """Lines for the run log."""
        lines = []
        if self.initial_weights is not None:
            lines.append(f"starting from the weights of {self.initial_weights} (weights only: a fresh optimiser, "
                         f"learning rate {model.learning_rate:g})")
        if self.frozen:
            lines.append(f"frozen, not trained: {', '.join(self.frozen)} ({model.trainable_parameters():,} "
                         "parameters left to train)")
        return lines


def initial_weights_source(loaded: LoadedConfiguration) -> Path | None:
    """The run folder or checkpoint file `training.initial_weights` names, as an absolute path, or None.

    Checks what needs no model, so that a wrong path fails before minutes of data preparation: that
    it exists, that a folder is a run folder, and that the run was trained with this configuration's
    backend (its checkpoints could not be read otherwise).
    """
    value = loaded.settings.training.initial_weights
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = _file_that_set(loaded, INITIAL_WEIGHTS).parent / path
    path = path.resolve()
    if not path.exists():
        raise _error(loaded, INITIAL_WEIGHTS, f"'{path}' does not exist; give a run folder or a checkpoint file")
    if path.is_dir():
        run = RunFolder(path)
        if not run.configuration_file.is_file():
            raise _error(loaded, INITIAL_WEIGHTS, f"'{path}' is a folder but not a run folder (it has no "
                         f"{CONFIGURATION_FILE}); give a folder made by `unmix train`, or a checkpoint file")
        backend = loaded.settings.training.backend
        trained_with = _recorded(loaded, run).get("backend")
        if trained_with is not None and trained_with != backend:
            raise _error(loaded, INITIAL_WEIGHTS, f"run folder '{path}' was trained with the {trained_with} backend, "
                         f"this configuration trains with {backend} (training.backend); give a {backend} run")
    return path


def fine_tune(model: SeparationModel, loaded: LoadedConfiguration, initial_weights: Path | None) -> FineTuning:
    """Load the weights of `initial_weights` (from `initial_weights_source`; None for a resumed run) and freeze
    `training.freeze`, before any training, and say what was done."""
    checkpoint = None
    if initial_weights is not None:
        load_weights = _method(model, "load_weights", loaded, INITIAL_WEIGHTS, "start from other weights")
        checkpoint = _checkpoint_in(initial_weights, model, loaded)
        _as_setting_error(loaded, INITIAL_WEIGHTS, load_weights, checkpoint)
    frozen = tuple(loaded.settings.training.freeze)
    if frozen:
        freeze = _method(model, "freeze", loaded, FREEZE, "keep weights frozen")
        _as_setting_error(loaded, FREEZE, freeze, list(frozen))
    return FineTuning(checkpoint, frozen)


def _checkpoint_in(source: Path, model: SeparationModel, loaded: LoadedConfiguration) -> Path:
    """A checkpoint file as it is; a run folder's best checkpoint, else its last (a run stopped before any
    validation has only that one)."""
    if not source.is_dir():
        return source
    candidates = [source / "weights" / f"{name}{model.checkpoint_suffix}" for name in CHECKPOINTS]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise _error(loaded, INITIAL_WEIGHTS, f"run folder '{source}' has no checkpoint (neither "
                 f"{' nor '.join(f'weights/{path.name}' for path in candidates)}); was its training started?")


def _method(model: SeparationModel, name: str, loaded: LoadedConfiguration, key: str,
            purpose: str) -> Callable[[Any], None]:
    """The optional method `name` of the model, or one line saying that this model cannot do what `key` asks."""
    method = getattr(model, name, None)
    if not callable(method):
        model_name = f"{model.backend}:{loaded.settings.training.model.name}"
        raise _error(loaded, key, f"model '{model_name}' cannot {purpose} (its plugin gives it no {name} method); "
                     f"remove {key} or choose another model")
    return method


def _as_setting_error(loaded: LoadedConfiguration, key: str, method: Callable[[Any], None], argument: Any) -> None:
    """Call `method`, naming the setting and its file in front of the model's own one-line error."""
    try:
        method(argument)
    except ModelError as error:
        raise _error(loaded, key, str(error)) from None


def _recorded(loaded: LoadedConfiguration, run: RunFolder) -> dict[str, Any]:
    """The run's model.json, or nothing when the run has none yet (its training never got that far)."""
    if not run.model_file.is_file():
        return {}
    try:
        return dict(run.read_json(run.model_file))
    except RunFolderError as error:
        raise _error(loaded, INITIAL_WEIGHTS, str(error)) from None


def _file_that_set(loaded: LoadedConfiguration, key: str) -> Path:
    return loaded.provenance.get(key, loaded.path)


def _error(loaded: LoadedConfiguration, key: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{_file_that_set(loaded, key)}: {key}: {problem}")
