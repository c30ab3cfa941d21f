"""`.pt` checkpoints: one file with weights, optimiser state and what unmix needs to check a fit.

The file is a `torch.save` dictionary of plain tensors and Python values, read back with
`weights_only=True`, so loading a checkpoint never runs code from it. It is written under a
temporary name in the same folder, flushed to disk and renamed into place: a crash, Ctrl-C or a
full disk leaves the previous checkpoint, never half of one.

Reading checks, in this order, what would otherwise surface as a long PyTorch traceback: that
the file exists, that it is not a Keras checkpoint (the other backend's format, also a zip
archive), that torch can read it (a cut-short file cannot be), that unmix wrote it, and that its
model, window shape and weight shapes are this model's.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from unmix.core.errors import ModelError, first_line
from unmix.core.files import atomic_path

FORMAT = "unmix-torch"
FORMAT_VERSION = 1


def save(path: Path, contents: Mapping[str, Any]) -> None:
    """Write through a Python file object: torch reports a failed write as a RuntimeError of its
    own, and only with a file object does the OSError behind it (a full disk) come along."""
    with atomic_path(Path(path)) as temporary, open(temporary, "wb") as handle:
        try:
            torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **contents}, handle)
        except RuntimeError as error:
            if isinstance(error.__context__, OSError):
                raise error.__context__ from None
            raise


def load(path: Path, device: torch.device) -> dict[str, Any]:
    """The checkpoint's dictionary, after making sure it is a whole unmix-torch checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint '{path}' does not exist")
    if _is_keras(path):
        raise ModelError(
            f"checkpoint '{path}' was written by the Keras backend (unmix-tf); the torch models read .pt "
            "checkpoints: set training.backend to tensorflow, or use a .pt checkpoint"
        )
    try:
        contents = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelError(
            f"checkpoint '{path}' is not a readable PyTorch checkpoint ({first_line(error)}; it may have been cut "
            "short): use another checkpoint"
        ) from None
    if not isinstance(contents, dict) or contents.get("format") != FORMAT:
        raise ModelError(f"checkpoint '{path}' is a PyTorch file but was not written by unmix: use a run's weights/")
    if contents.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"checkpoint '{path}' was written by a newer unmix-torch; upgrade unmix-torch to read it")
    return contents


def _is_keras(path: Path) -> bool:
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return True
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return "config.json" in names and "model.weights.h5" in names
