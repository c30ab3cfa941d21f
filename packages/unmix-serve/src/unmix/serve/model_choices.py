"""The models a song can be separated with: every trained run under --runs, and the model files
`unmix export` wrote into a run's export/ folder when an installed runtime reads them.

A model is named by its path below --runs, `<run>` or `<run>/export/<file>`, so the page, the API
and the job records all use one spelling, and resolving it goes through the same checks as any
other name from a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from unmix.serve.run_folders import MODEL_FILE, export_names, has_checkpoint, open_run, read_json, run_names
from unmix.serve.safety import RequestError, checked_name, inside

if TYPE_CHECKING:
    from unmix.core.separation.prediction import ModelFiles

EXPORT_FOLDER = "export"


@attrs.frozen
class ModelChoice:
    id: str
    run: str
    kind: str
    """"run" (the run's best checkpoint, on its training framework) or "export" (a model file, on its runtime)."""
    path: Path
    description: str
    ready: bool
    """False for a run that has not saved a checkpoint yet: listed, but it cannot separate."""

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "run": self.run, "kind": self.kind, "description": self.description,
                "ready": self.ready}

    def model_files(self) -> ModelFiles:
        """What `load_engine` needs, found and checked; raises UnmixError with what is missing."""
        from unmix.core.runs import open_run_folder
        from unmix.core.separation.prediction import model_file_model_files, run_model_files

        if self.kind == "export":
            return model_file_model_files(self.path)
        return run_model_files(open_run_folder(self.path))


def runtime_suffixes() -> tuple[str, ...]:
    """The model file suffixes that installed runtimes read (".onnx" with unmix-onnx)."""
    from unmix.core.separation.prediction import runtimes_by_suffix

    return tuple(sorted(runtimes_by_suffix()))


def list_choices(root: Path) -> list[ModelChoice]:
    suffixes = runtime_suffixes()
    choices = []
    for run in run_names(root):
        choices.append(_run_choice(root, run))
        choices.extend(_export_choice(root, run, name) for name in export_names(root / run, suffixes))
    return choices


def find_choice(root: Path, model: str) -> ModelChoice:
    """The model a request names: 400 for a name that is not `<run>` or `<run>/export/<file>`, 404 for
    one that does not exist under --runs."""
    parts = model.split("/")
    for part in parts:
        checked_name(part, "model")
    if len(parts) == 1:
        return _run_choice(root, parts[0])
    if len(parts) != 3 or parts[1] != EXPORT_FOLDER:
        raise RequestError(400, f"model '{model}' is neither a run name nor <run>/export/<file>; pick a model "
                                "from the list")
    run, _, name = parts
    open_run(root, run)
    path = inside(root, run, EXPORT_FOLDER, name, what="model file")
    if not path.is_file():
        raise RequestError(404, f"run '{run}' has no exported model '{name}'; pick a model from the list")
    if path.suffix not in runtime_suffixes():
        raise RequestError(400, f"no installed runtime reads '{name}' ({path.suffix or 'no suffix'}); "
                                "for .onnx files install unmix-onnx on the server")
    return _export_choice(root, run, name)


def _run_choice(root: Path, run: str) -> ModelChoice:
    folder = open_run(root, run)
    model = read_json(folder / MODEL_FILE)
    description = f"{model.get('backend', '?')}:{model.get('model', '?')}" if isinstance(model, dict) else "?"
    ready = has_checkpoint(folder, model)
    return ModelChoice(id=run, run=run, kind="run", path=folder,
                       description=description if ready else f"{description}, no checkpoint yet", ready=ready)


def _export_choice(root: Path, run: str, name: str) -> ModelChoice:
    path = inside(root, run, EXPORT_FOLDER, name, what="model file")
    return ModelChoice(id=f"{run}/{EXPORT_FOLDER}/{name}", run=run, kind="export", path=path,
                       description=f"exported {path.suffix.lstrip('.')} model", ready=True)
