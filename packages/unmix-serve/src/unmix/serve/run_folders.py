"""Reading run folders for the runs pages: what `unmix train` and `unmix evaluate` leave in them.

Everything here only reads, file by file, and a missing or half-written file is shown as missing
rather than refused: a run being trained changes while it is read, and a run whose model plugin
is not installed in this environment still has curves and scores worth seeing. So the
configuration is read as plain jsonc, not validated against the installed plugins.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from unmix.core.config.jsonc import load_jsonc
from unmix.core.errors import UnmixError
from unmix.core.runs import CONFIGURATION_FILE, LOCK_FILE
from unmix.serve.safety import RequestError, inside

MODEL_FILE = "model.json"
STATE_FILE = "state.json"
EVALUATION_FILE = "evaluation.json"
QUIET_SECONDS = 600
"""Where training locks cannot be seen (no /proc/locks), a run whose files changed this recently counts as training."""


def is_run(folder: Path) -> bool:
    """A folder `unmix train` made: the merged configuration and the model description."""
    return (folder / CONFIGURATION_FILE).is_file() and (folder / MODEL_FILE).is_file()


def run_names(root: Path) -> list[str]:
    """The run folders directly under `root`, newest first (their names start with the start time).

    Entries that resolve outside `root` (symlinks out) are left out, as a request for them would be refused.
    """
    if not root.is_dir():
        return []
    base = root.resolve()
    names = [entry.name for entry in root.iterdir()
             if not entry.name.startswith(".") and entry.resolve().parent == base and is_run(entry)]
    return sorted(names, reverse=True)


def open_run(root: Path, name: str) -> Path:
    """The run folder `name` under `root`, checked (`safety.inside`); 404 if it is not a run."""
    folder = inside(root, name, what="run")
    if not is_run(folder):
        raise RequestError(404, f"no run '{name}' under --runs; pick one from the runs page")
    return folder


def has_checkpoint(folder: Path, model: Any) -> bool:
    """Whether training has saved the best checkpoint that separating loads (named as model.json says)."""
    suffix = model.get("checkpoint_suffix", "") if isinstance(model, dict) else ""
    return (folder / "weights" / f"best{suffix}").is_file()


def read_json(path: Path) -> Any:
    """The file's JSON, or None while it is missing or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_configuration(folder: Path) -> tuple[dict[str, Any], str | None]:
    """The merged configuration as written, and why it could not be read (None when it could)."""
    try:
        data = load_jsonc(folder / CONFIGURATION_FILE)
    except UnmixError as error:
        return {}, str(error).replace(str(folder), folder.name)
    return (data, None) if isinstance(data, dict) else ({}, "the configuration is not a JSON object")


def _setting(configuration: dict[str, Any], *keys: str, default: Any = None) -> Any:
    value: Any = configuration
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def read_epochs(folder: Path, configuration: dict[str, Any]) -> tuple[list[str], list[dict[str, float | None]]]:
    """results.csv's columns and one row per finished epoch (file name and separator as the run configured).

    A last row still being written (fewer cells than the header) is left for the next read; values
    that are not finite numbers (a diverged loss) become None, which JSON can carry.
    """
    logger = _setting(configuration, "training", "callbacks", "csv_logger", default={})
    name = logger.get("file_name", "results.csv") if isinstance(logger, dict) else "results.csv"
    separator = logger.get("separator", ";") if isinstance(logger, dict) else ";"
    try:
        path = inside(folder, *Path(str(name)).parts, what="results file")
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter=str(separator) or ";"))
    except (OSError, RequestError, csv.Error, UnicodeDecodeError):
        return [], []
    if not rows:
        return [], []
    header, epochs = rows[0], []
    for row in rows[1:]:
        if len(row) < len(header):
            continue
        epochs.append({column: _number(value) for column, value in zip(header, row, strict=False)})
    return header, epochs


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_evaluation(folder: Path) -> dict[str, Any] | None:
    """`unmix evaluate`'s summary as table rows (model, mixture, oracle, gap closed) and the headline
    metric per song, from evaluation.json; None for a run not evaluated yet."""
    from unmix.core.evaluation.evaluate import HEADLINE_METRICS, METHODS
    from unmix.core.evaluation.metrics import fraction_of_gap

    report = read_json(folder / EVALUATION_FILE)
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        return None
    summary = report["summary"]

    def median(method: str, stem: str, metric: str) -> float | None:
        value = summary.get(method, {}).get(stem, {}).get(metric, {})
        number = value.get("median") if isinstance(value, dict) else None
        return number if isinstance(number, (int, float)) and math.isfinite(number) else None

    rows = []
    for stem in ("target", "rest"):
        found = summary.get("model", {}).get(stem, {})
        metrics = [metric for metric in HEADLINE_METRICS if metric in found]
        for metric in metrics:
            model, mixture, oracle = (median(method, stem, metric) for method in METHODS)
            gap = fraction_of_gap(model, mixture, oracle) if None not in (model, mixture, oracle) else math.nan
            rows.append({"stem": stem, "metric": metric, "model": model, "mixture": mixture, "oracle": oracle,
                         "gap_closed": None if math.isnan(gap) else gap})
    headline = next((row["metric"] for row in rows if row["stem"] == "target"), None)
    return {"target": report.get("target"), "epoch": report.get("epoch"), "metric": headline, "rows": rows,
            "songs": _song_scores(report.get("songs"), headline) if headline else [],
            "updated": _modified(folder / EVALUATION_FILE)}


def _song_scores(songs: Any, metric: str) -> list[dict[str, Any]]:
    """Per song, the target's `metric` for model, mixture and oracle (what plots/evaluation_sdr.png draws)."""
    table: dict[str, dict[str, Any]] = {}
    for entry in songs if isinstance(songs, list) else []:
        if not isinstance(entry, dict):
            continue
        value = entry.get("stems", {}).get("target", {}).get(metric)
        row = table.setdefault(str(entry.get("song")), {"song": str(entry.get("song"))})
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        row[str(entry.get("method"))] = value if finite else None
    return list(table.values())


def plot_names(folder: Path) -> list[str]:
    """The PNGs in plots/: the loss curve first, then the evaluation's, then per-song spectrograms."""
    plots = folder / "plots"
    names = [path.name for path in plots.glob("*.png") if path.is_file()] if plots.is_dir() else []

    def order(name: str) -> tuple[int, str]:
        rank = 0 if name == "loss.png" else 1 if name.startswith("evaluation") else 2
        return rank, name

    return sorted(names, key=order)


def export_names(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Model files in export/ that an installed runtime reads (`unmix export`)."""
    exports = folder / "export"
    if not exports.is_dir() or not suffixes:
        return []
    return sorted(path.name for path in exports.iterdir()
                  if path.suffix in suffixes and path.is_file() and not path.name.startswith("."))


def training_now(folder: Path, finished: bool, changed: float | None) -> bool:
    """Whether an `unmix train` process holds the run's lock (runs.training_lock) right now.

    The lock is an flock, which Linux lists in /proc/locks: reading that never takes the lock, so a
    training starting at that moment is not refused. Without /proc/locks, a run that is not
    finished and whose files changed in the last ten minutes counts as training.
    """
    lock = folder / LOCK_FILE
    try:
        status = lock.stat()
    except OSError:
        return False
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:
        return not finished and changed is not None and time.time() - changed < QUIET_SECONDS
    wanted = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    return any("FLOCK" in line and wanted in line.split() for line in locks.splitlines())


def _object(value: Any) -> dict[str, Any]:
    """A JSON file's object, or an empty one for a file that is missing, half-written or holds something else."""
    return value if isinstance(value, dict) else {}


def _modified(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def describe_run(root: Path, name: str, export_suffixes: tuple[str, ...], full: bool = True) -> dict[str, Any]:
    """What the API says about one run; `full` adds the configuration, every epoch and the evaluation."""
    folder = open_run(root, name)
    configuration, configuration_error = read_configuration(folder)
    model = _object(read_json(folder / MODEL_FILE))
    state = _object(read_json(folder / STATE_FILE))
    columns, epochs = read_epochs(folder, configuration)
    planned = _setting(configuration, "training", "epoch", "count")
    done = state.get("epoch") if isinstance(state.get("epoch"), int) else 0
    finished = bool(state.get("stop_reason")) or (isinstance(planned, int) and done >= planned)
    stamps = [_modified(folder / file) for file in ("results.csv", STATE_FILE, "logs.txt", MODEL_FILE)]
    changed = max((stamp for stamp in stamps if stamp is not None), default=None)
    evaluation = read_evaluation(folder)
    summary = {
        "name": name,
        "model": f"{model.get('backend', '?')}:{model.get('model', '?')}",
        "target": _setting(configuration, "collection", "target"),
        "epochs": len(epochs),
        "planned_epochs": planned if isinstance(planned, int) else None,
        "last": epochs[-1] if epochs else None,
        "best": {"value": state.get("best_value"), "epoch": state.get("best_epoch")} if state else None,
        "stop_reason": state.get("stop_reason"),
        "training": training_now(folder, finished, changed),
        "has_checkpoint": has_checkpoint(folder, model),
        "evaluated": evaluation is not None,
        "headline": next((row for row in evaluation["rows"] if row["stem"] == "target"), None) if evaluation else None,
        "updated": changed,
    }
    if not full:
        return summary
    return {
        **summary,
        "configuration": configuration,
        "configuration_error": configuration_error,
        "model_description": model,
        "state": state,
        "columns": columns,
        "epoch_rows": epochs,
        "evaluation": evaluation,
        "plots": [{"name": plot, "url": f"/api/runs/{name}/plots/{plot}"} for plot in plot_names(folder)],
        "exports": export_names(folder, export_suffixes),
    }


def plot_file(root: Path, name: str, plot: str) -> Path:
    """A PNG in a run's plots/ folder, checked like every other name from a request."""
    folder = open_run(root, name)
    path = inside(folder, "plots", plot, what="plot")
    if path.suffix.lower() != ".png" or not path.is_file():
        raise RequestError(404, f"run '{name}' has no plot '{plot}'")
    return path
