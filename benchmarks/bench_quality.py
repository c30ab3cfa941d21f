"""Separation quality at a fixed training budget: an unmix configuration against Open-Unmix.

Both models train from scratch on the same songs for the same wall-clock budget, one after the
other on the same machine, then separate the same held-out test songs and are scored by the same
scorer (`unmix.core.evaluate.score_songs`: museval median, whole-track SDR and the rest, next to
the mixture as the floor and the ideal ratio mask as the ceiling). The table gives medians over
songs and the fraction of the floor-to-ceiling gap each model closed, plus how fast each separated
the test songs (seconds of audio per second, network and STFTs, in this process).

- unmix trains with `unmix train` in a subprocess, with the configuration's epoch count raised
  and early stopping off so it uses the whole budget; when the budget is spent it gets Ctrl-C
  (SIGINT), which ends training at the next batch with a checkpoint. Its best checkpoint (by
  validation loss) is scored.
- Open-Unmix follows its published recipe (benchmarks/open_unmix_baseline.py), on the same
  training and validation songs, best state by validation loss.
- The split is the unmix configuration's (md5 order, collection.test_data_count test songs).

Run: `nox -s bench-quality -- [--configuration C] [--collection DIR] [--budget-minutes 30] [--output DIR]`
(default: configurations/quickstart.jsonc on a fresh demo collection, 30 minutes per model, so
a little over an hour in all on 2 cores). Needs `pip install openunmix --no-deps` (the nox session
installs it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from open_unmix_baseline import OpenUnmixRun, train_open_unmix  # noqa: E402

from unmix.core.callbacks import read_results  # noqa: E402
from unmix.core.collection import split_collection  # noqa: E402
from unmix.core.config import load_configuration  # noqa: E402
from unmix.core.config_schema import Configuration  # noqa: E402
from unmix.core.evaluate import score_songs  # noqa: E402
from unmix.core.metrics import aggregate, fraction_of_gap  # noqa: E402
from unmix.core.prediction import engine_from_run  # noqa: E402
from unmix.core.tracks import SongAudio  # noqa: E402
from unmix.core.training_data import collection_songs  # noqa: E402

ROWS = [("target", "museval_sdr"), ("target", "sdr"), ("rest", "museval_sdr"), ("rest", "sdr")]


@attrs.frozen
class OpenUnmixEngine:
    """Open-Unmix behind the few engine attributes `score_songs` reads, so both models meet one scorer."""

    run: OpenUnmixRun
    settings: Configuration

    @property
    def sample_rate(self) -> int:
        return self.settings.collection.sample_rate

    @property
    def target(self) -> str:
        return self.settings.collection.target

    def separate_samples(self, samples: np.ndarray) -> np.ndarray:
        return self.run.separate_samples(samples)


def unmix_command() -> str:
    return str(Path(sys.executable).parent / "unmix")


def make_demo_collection(destination: Path) -> Path:
    subprocess.run([unmix_command(), "datasets", "demo", str(destination), "--force"], check=True)
    return destination


def budget_configuration(configuration: Path, collection: Path, folder: Path) -> Path:
    """A child configuration that trains until interrupted: many epochs, no early stopping."""
    child = {
        "base": configuration.resolve().as_posix(),
        "environment": {"name": f"{configuration.stem}-budget"},
        "collection": {"folder": collection.resolve().as_posix()},
        "training": {"epoch": {"count": 100000}, "callbacks": {"early_stopping": {"enabled": False}}},
    }
    path = folder / f"{configuration.stem}-budget.jsonc"
    path.write_text(json.dumps(child, indent=2))
    return path


def train_unmix(configuration: Path, working_directory: Path, budget_seconds: float) -> tuple[Path, float]:
    """Train with the real command until the budget is spent, then Ctrl-C it; the run folder and seconds."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    process = subprocess.Popen([unmix_command(), "train", str(configuration), "--workingdir", str(working_directory)],
                               env=environment)
    try:
        process.wait(timeout=budget_seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        process.wait()
    seconds = time.perf_counter() - start
    runs = sorted((working_directory / "runs").iterdir())
    if process.returncode not in (0, 130) or not runs:
        raise SystemExit(f"unmix train failed (exit {process.returncode})")
    return runs[-1], seconds


def loaded(songs: list) -> list[SongAudio]:
    """The split holds cached songs that decode on `load()`; both trainers want the audio."""
    return [song.load() for song in songs]


def separation_speed(engine: object, songs: list) -> float:
    """Seconds of test audio separated per second of wall time, one song after another."""
    audio_seconds = 0.0
    start = time.perf_counter()
    for song in songs:
        mix = np.asarray(song.target, dtype=np.float32) + np.asarray(song.rest, dtype=np.float32)
        engine.separate_samples(mix)
        audio_seconds += mix.shape[-1] / song.sample_rate
    return audio_seconds / (time.perf_counter() - start)


def median(summary: dict, method: str, stem: str, metric: str) -> float:
    value = summary.get(method, {}).get(stem, {}).get(metric)
    return math.nan if value is None else value.median


def print_table(summary: dict, songs: int, target: str, trained: dict[str, str], speeds: dict[str, float]) -> None:
    methods = ["mixture", "unmix", "open-unmix", "oracle"]
    print(f"\n{songs} test songs; medians over songs in dB; target = {target}")
    print(f"{'stem':<7}{'metric':<13}" + "".join(f"{method:>12}" for method in methods)
          + f"{'unmix gap':>11}{'umx gap':>9}")
    for stem, metric in ROWS:
        values = {method: median(summary, method, stem, metric) for method in methods}
        gaps = [fraction_of_gap(values[model], values["mixture"], values["oracle"])
                for model in ("unmix", "open-unmix")]
        print(f"{stem:<7}{metric:<13}" + "".join(f"{values[method]:>12.2f}" for method in methods)
              + "".join(f"{100 * gap:>10.0f}%" if not math.isnan(gap) else f"{'':>10} " for gap in gaps))
    for model in ("unmix", "open-unmix"):
        print(f"{model}: {trained[model]}; separates {speeds[model]:.0f}x real time")
    better = median(summary, "unmix", "target", "sdr") > median(summary, "open-unmix", "target", "sdr")
    faster = speeds["unmix"] >= speeds["open-unmix"]
    print(f"target sdr higher than Open-Unmix: {'yes' if better else 'NO'}; "
          f"separates at least as fast: {'yes' if faster else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--configuration", type=Path, default=REPOSITORY / "configurations" / "quickstart.jsonc")
    parser.add_argument("--collection", type=Path, default=None, help="default: a fresh `unmix datasets demo`")
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="training wall time per model")
    parser.add_argument("--output", type=Path, default=None, help="keep runs and data here (default: a temp dir)")
    arguments = parser.parse_args()
    budget = 60.0 * arguments.budget_minutes

    with tempfile.TemporaryDirectory(prefix="unmix-bench-quality-") as temporary:
        folder = arguments.output or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        collection = arguments.collection or make_demo_collection(folder / "data")
        configuration = budget_configuration(arguments.configuration, collection, folder)
        settings = load_configuration(configuration).settings
        split = split_collection(settings.collection, lambda path: collection_songs(settings, path))
        training, validation, test = (loaded(songs) for songs in (split.training, split.validation, split.test))
        print(f"songs: {len(training)} training, {len(validation)} validation, {len(test)} test; "
              f"budget {arguments.budget_minutes:g} min per model")

        run, unmix_seconds = train_unmix(configuration, folder, budget)
        unmix_engine = engine_from_run(run)
        epochs = len(read_results(run / "results.csv"))
        scores = score_songs(unmix_engine, test, jobs=2)
        scores = [score if score.method != "model" else attrs.evolve(score, method="unmix") for score in scores]

        umx = train_open_unmix(training, validation, settings.collection.sample_rate, budget)
        umx_engine = OpenUnmixEngine(umx, settings)
        umx_scores = score_songs(umx_engine, test, jobs=2)
        scores += [attrs.evolve(score, method="open-unmix") for score in umx_scores if score.method == "model"]

        speeds = {"unmix": separation_speed(unmix_engine, test),
                  "open-unmix": separation_speed(umx_engine, test)}
        trained = {
            "unmix": f"{settings.training.model.name} ({settings.training.backend}), {epochs} epochs in "
                     f"{unmix_seconds:.0f} s, {unmix_engine.model.trainable_parameters():,} parameters, run {run}",
            "open-unmix": f"{umx.steps} steps ({umx.epochs:.2f} epochs) in {umx.seconds:.0f} s, "
                          f"{umx.parameters:,} parameters, n_fft {umx.n_fft}, hop {umx.hop_length}, "
                          f"best validation loss {umx.best_validation_loss}",
        }
        print_table(aggregate(scores), len(test), settings.collection.target, trained, speeds)


if __name__ == "__main__":
    main()
