"""Separation quality at a fixed training budget: an unmix configuration against Open-Unmix.

Both models train from scratch on the same songs for the same wall-clock budget, one after the
other on the same machine, then separate the same held-out test songs and are scored by the same
scorer (`unmix.core.evaluation.evaluate.score_songs`: museval median, whole-track SDR and the rest, next to
the mixture as the floor and the ideal ratio mask as the ceiling). The table gives medians over
songs and the fraction of the floor-to-ceiling gap each model closed, plus how fast each separated
the test songs (seconds of audio per second, network and STFTs, in memory in this process: neither
side decodes or writes files), at the configuration's rate and the songs' channel count, which the
table states. The CPU and the thread counts of both sides are printed: PyTorch (Open-Unmix) and
TensorFlow (unmix, in this process and in `unmix train`) get the same `--threads`, every core by
default.

`--configuration` may be given more than once: each configuration trains as its own side (named
by its file name) against the same single Open-Unmix training, so several unmix models meet one
baseline in one run. They must agree on the collection's rate, target and split.

`--side-by-side` trains every side at the same time instead, each pinned to an equal share of the
cores with one thread per core (on 2 cores: unmix on one, Open-Unmix on the other), so a repeat
costs one budget instead of one per side; both sides then also share the memory bandwidth alike.
Scoring afterwards uses every core. Per-side throughput is lower than with all cores, so compare
numbers only with numbers measured the same way.

One training of each is one sample of a noisy process (threaded batches, non-deterministic kernels,
few test songs): `--repeats N` trains both N times and reports, per metric, the median over runs
and the spread (min-max), and calls a side ahead only where the two spreads do not overlap.
A median over 5 test songs moves with a single song, so every run also prints the mean and each
song's target whole-track SDR, and writes every song's scores to `repeat-N/scores.json` in the
output folder.

- unmix trains with `unmix train` in a subprocess, with the configuration's epoch count raised,
  early stopping off and `training.time_limit_minutes` set to the budget, so its epochs (training,
  validation, checkpoints) take the whole budget and a learning-rate schedule that follows the
  time limit anneals over it; start-up (decoding the songs, building the model) is not counted,
  as Open-Unmix gets its songs decoded. Its best checkpoint (by validation loss) is scored.
- Open-Unmix follows its published recipe (benchmarks/open_unmix_baseline.py), on the same
  training and validation songs, best state by validation loss.
- The split is the unmix configuration's (md5 order, collection.test_data_count test songs).

A number counts when it was measured on music that did not choose the settings. Settings are tuned
on the demo collection of `--demo-seed 0` (the default) only; results are reported on collections
that play none of its pieces, made with another seed and `--exclude-pieces-of` the tuning
collection, for the guitar and for a second target:

    nox -s bench-quality -- --output tuning --budget-minutes 30                      # tune here only
    nox -s bench-quality -- --demo-seed 1 --exclude-pieces-of tuning/data --repeats 3
    nox -s bench-quality -- --demo-seed 2 --target piano --exclude-pieces-of tuning/data --repeats 3

The first lines printed name the collection (seed, target, how many pieces were held out).

Run: `nox -s bench-quality -- [--configuration C] [--collection DIR] [--budget-minutes 30] [--output DIR]
[--repeats 1] [--threads N] [--side-by-side] [--songs 24] [--song-seconds S]` (default: configurations/quickstart.jsonc
on a fresh 24-song demo collection, 30 minutes per model, so a little over an hour in all on 2
cores; a smoke run: `--budget-minutes 1 --songs 9 --song-seconds 8`). Needs
`pip install openunmix==1.3.0 --no-deps` (the nox session installs it).
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
import torch

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from machine import THREAD_VARIABLES, default_threads, describe_cpu, describe_threads, use_threads  # noqa: E402
from open_unmix_baseline import OpenUnmixRun, train_open_unmix  # noqa: E402

from unmix.core.config.loader import load_configuration  # noqa: E402
from unmix.core.config.schema import Configuration  # noqa: E402
from unmix.core.data.collection import split_collection  # noqa: E402
from unmix.core.data.tracks import SongAudio  # noqa: E402
from unmix.core.data.training_data import collection_songs  # noqa: E402
from unmix.core.evaluation.evaluate import score_songs  # noqa: E402
from unmix.core.evaluation.metrics import SongScores, aggregate, fraction_of_gap  # noqa: E402
from unmix.core.separation.prediction import engine_from_run  # noqa: E402
from unmix.core.training.callbacks import read_results  # noqa: E402

BASELINE = "open-unmix"
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


def make_demo_collection(destination: Path, songs: int, seconds: float | None, seed: int = 0,
                         target: str | None = None, excluded: list[Path] | None = None) -> Path:
    """A demo collection; `excluded` collections' pieces stay out of it, so it is music they never had."""
    options = ["--songs", str(songs), "--seed", str(seed)]
    options += [] if seconds is None else ["--seconds", str(seconds)]
    options += [] if target is None else ["--target", target]
    options += [word for collection in excluded or [] for word in ("--exclude-pieces-of", str(collection))]
    subprocess.run([unmix_command(), "datasets", "demo", str(destination), "--force", *options], check=True)
    return destination


def budget_configuration(configuration: Path, collection: Path, folder: Path, budget_seconds: float,
                         target: str | None = None) -> Path:
    """A child configuration that trains for the budget: its time limit, many epochs, no early stopping."""
    child = {
        "base": configuration.resolve().as_posix(),
        "environment": {"name": f"{configuration.stem}-budget"},
        "collection": {"folder": collection.resolve().as_posix(), **({"target": target} if target else {})},
        "training": {"epoch": {"count": 100000}, "time_limit_minutes": budget_seconds / 60.0,
                     "callbacks": {"early_stopping": {"enabled": False}}},
    }
    path = folder / f"{configuration.stem}-budget.jsonc"
    path.write_text(json.dumps(child, indent=2))
    return path


def start_unmix_training(configuration: Path, working_directory: Path, cores: list[int] | None = None
                         ) -> subprocess.Popen:
    """`unmix train` in a subprocess; with `cores`, pinned to them and given that many threads."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if cores is not None:
        environment.update({name: str(len(cores)) for name in THREAD_VARIABLES})
    pin = None if cores is None else lambda: os.sched_setaffinity(0, cores)
    return subprocess.Popen([unmix_command(), "train", str(configuration), "--workingdir", str(working_directory)],
                            env=environment, preexec_fn=pin)


def finish_unmix_training(process: subprocess.Popen, working_directory: Path, deadline: float) -> tuple[Path, float]:
    """Wait until the time limit ends the training (Ctrl-C at `deadline`, a guard for a limit that never
    comes); the run folder and the seconds of epochs."""
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        process.wait()
    runs = sorted((working_directory / "runs").iterdir())
    if process.returncode not in (0, 130) or not runs:
        raise SystemExit(f"unmix train failed (exit {process.returncode})")
    return runs[-1], json.loads((runs[-1] / "state.json").read_text())["training_seconds"]


def guard_deadline(budget_seconds: float) -> float:
    """Start-up and the time limit together may take twice the budget and a minute before Ctrl-C."""
    return time.monotonic() + 2 * budget_seconds + 60


def core_groups(cores: list[int], groups: int) -> list[list[int]]:
    """`cores` dealt into `groups` equal shares (the remainder stays idle), so every side gets as many."""
    share = len(cores) // groups
    if share < 1:
        raise SystemExit(f"--side-by-side needs a core for each of the {groups} trainings (unmix sides and "
                         f"Open-Unmix) but this process may use {len(cores)}; give fewer --configuration")
    return [cores[number * share:(number + 1) * share] for number in range(groups)]


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


def over_songs(summary: dict, method: str, stem: str, metric: str, statistic: str = "median") -> float:
    """A metric's median (or mean) over the test songs; nan where the method has no such score."""
    value = summary.get(method, {}).get(stem, {}).get(metric)
    return math.nan if value is None else getattr(value, statistic)


def print_table(summary: dict, songs: int, target: str, trained: dict[str, str], speeds: dict[str, float]) -> None:
    models = list(trained)
    methods = ["mixture", *models, "oracle"]
    width = max(12, *(len(model) + 2 for model in models))
    print(f"\n{songs} test songs; medians over songs in dB; target = {target}; gap: share of mixture-to-oracle closed")
    print(f"{'stem':<7}{'metric':<13}" + "".join(f"{method:>{width}}" for method in methods)
          + "".join(f"{'gap ' + str(number):>8}" for number in range(1, len(models) + 1)))
    for stem, metric in ROWS:
        values = {method: over_songs(summary, method, stem, metric) for method in methods}
        gaps = [fraction_of_gap(values[model], values["mixture"], values["oracle"]) for model in models]
        print(f"{stem:<7}{metric:<13}" + "".join(f"{values[method]:>{width}.2f}" for method in methods)
              + "".join(f"{100 * gap:>7.0f}%" if not math.isnan(gap) else f"{'':>8}" for gap in gaps))
    means = [over_songs(summary, method, "target", "sdr", "mean") for method in methods]
    print(f"{'target':<7}{'sdr, mean':<13}" + "".join(f"{value:>{width}.2f}" for value in means))
    for number, model in enumerate(models, start=1):
        print(f"{number} {model}: {trained[model]}; separates {speeds[model]:.0f}x real time")
    baseline = over_songs(summary, BASELINE, "target", "sdr")
    for model in models[:-1]:
        better = over_songs(summary, model, "target", "sdr") > baseline
        faster = speeds[model] >= speeds[BASELINE]
        print(f"{model}: target sdr higher than Open-Unmix: {'yes' if better else 'NO'}; "
              f"separates at least as fast: {'yes' if faster else 'NO'}")


def print_per_song(scores: list[SongScores], methods: list[str]) -> None:
    """Target whole-track SDR of every test song: a median over 5 songs moves with one song, and the
    songs show whether a change helped everywhere or only where it was already good."""
    by_song: dict[str, dict[str, float]] = {}
    for score in scores:
        by_song.setdefault(score.song, {})[score.method] = score.stems["target"]["sdr"]
    width = max(12, *(len(method) + 2 for method in methods))
    print("\ntarget whole-track SDR per test song, dB")
    print(f"{'song':<40}" + "".join(f"{method:>{width}}" for method in methods))
    for song, values in by_song.items():
        print(f"{song[:39]:<40}" + "".join(f"{values.get(method, math.nan):>{width}.2f}" for method in methods))


def write_scores(scores: list[SongScores], path: Path) -> None:
    """Every song's every score, so a run can be looked at again without training it again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"song": score.song, "method": score.method, **score.flat()} for score in scores],
                               indent=1))


@attrs.frozen
class Trial:
    """One training of each side, scored: every song's scores and their summary, how each trained,
    how fast each separates."""

    scores: list[SongScores]
    summary: dict
    trained: dict[str, str]
    speeds: dict[str, float]


@attrs.frozen
class Spread:
    """A number over repeated runs: the median and the range it moved in."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(float(np.median(values)), min(values), max(values))

    def __str__(self) -> str:
        return f"{self.median:.2f} [{self.low:.2f}-{self.high:.2f}]"


def comparison(unmix: Spread, umx: Spread) -> str:
    """'ahead' or 'behind' only when one side's worst run beats the other's best; else level within the noise."""
    if unmix.low > umx.high:
        return "ahead"
    if unmix.high < umx.low:
        return "behind"
    return "level"


def print_spreads(trials: list[Trial], songs: int, target: str) -> None:
    models = list(trials[0].trained)
    width = max(21, *(len(model) + 2 for model in models))
    print(f"\n{len(trials)} runs of each, {songs} test songs; per run the median over songs in dB; "
          f"here the median over runs [min-max]; target = {target}; verdict against Open-Unmix, "
          "ahead or behind only where the spreads do not overlap")
    print(f"{'stem':<7}{'metric':<13}{'mixture':>9}" + "".join(f"{model:>{width}}" for model in models)
          + f"{'oracle':>9}  verdicts")
    for stem, metric in ROWS:
        floor, ceiling = (over_songs(trials[0].summary, method, stem, metric) for method in ("mixture", "oracle"))
        spreads = {model: Spread.of([over_songs(trial.summary, model, stem, metric) for trial in trials])
                   for model in models}
        verdicts = ", ".join(comparison(spreads[model], spreads[BASELINE]) for model in models[:-1])
        print(f"{stem:<7}{metric:<13}{floor:>9.2f}" + "".join(f"{spreads[model]!s:>{width}}" for model in models)
              + f"{ceiling:>9.2f}  {verdicts}")
    means = {model: Spread.of([over_songs(trial.summary, model, "target", "sdr", "mean") for trial in trials])
             for model in models}
    print(f"{'target':<7}{'sdr, mean':<13}{'':>9}" + "".join(f"{means[model]!s:>{width}}" for model in models))
    for model in models:
        print(f"{model}: separates {Spread.of([trial.speeds[model] for trial in trials])}x real time")


def channel_handling(song_channels: int, model_channels: int) -> str:
    """How a model sees the songs' channels, which decides how much work one second of audio is."""
    if song_channels == 1:
        return "mono"
    return f"{song_channels} channels, " + ("each as mono" if model_channels == 1 else "jointly")


def score_unmix(configuration: Path, settings: Configuration, run: Path, seconds: float, test: list
                ) -> tuple[list, str, float]:
    """One trained unmix side: its best checkpoint's scores, how it trained, how fast it separates."""
    engine = engine_from_run(run)
    epochs = len(read_results(run / "results.csv"))
    scores = score_songs(engine, test, jobs=2)
    name = side_name(configuration)
    scores = [score if score.method != "model" else attrs.evolve(score, method=name) for score in scores]
    described = (f"{settings.training.model.name} ({settings.training.backend}), {epochs} epochs in {seconds:.0f} s, "
                 f"{engine.model.trainable_parameters():,} parameters, {settings.collection.sample_rate} Hz, "
                 f"{channel_handling(test[0].channels, settings.channels)}, run {run}")
    return scores, described, separation_speed(engine, test)


def pin_process(cores: set[int]) -> None:
    """Every thread of this process onto `cores` (a thread pool started earlier would keep its old cores)."""
    for thread in Path("/proc/self/task").iterdir():
        os.sched_setaffinity(int(thread.name), cores)


def train_open_unmix_on(cores: list[int], splits: tuple[list, list, list], rate: int, budget: float,
                        seed: int) -> OpenUnmixRun:
    """Open-Unmix trained in this process on `cores` only, with one PyTorch thread per core."""
    everywhere, threads = os.sched_getaffinity(0), torch.get_num_threads()
    pin_process(set(cores))
    torch.set_num_threads(len(cores))
    try:
        return train_open_unmix(splits[0], splits[1], rate, budget, seed=seed)
    finally:
        pin_process(everywhere)
        torch.set_num_threads(threads)


def train_all(repeat: int, sides: list[tuple[Path, Configuration]], folder: Path, splits: tuple[list, list, list],
              budget: float, shares: list[list[int]] | None) -> tuple[list[tuple[Path, float]], OpenUnmixRun]:
    """Every unmix side's (run, seconds of epochs) and the Open-Unmix training: one after the other
    on every core, or side by side, each on its own share of the cores (`shares`: the sides', then
    Open-Unmix's)."""
    rate = sides[0][1].collection.sample_rate
    folders = [folder / f"repeat-{repeat}" / side_name(configuration) for configuration, _ in sides]
    if shares is None:
        runs = []
        for (configuration, _), working in zip(sides, folders, strict=True):
            process = start_unmix_training(configuration, working)
            runs.append(finish_unmix_training(process, working, guard_deadline(budget)))
        return runs, train_open_unmix(splits[0], splits[1], rate, budget, seed=repeat)
    *unmix_cores, umx_cores = shares
    processes = [start_unmix_training(configuration, working, cores)
                 for (configuration, _), working, cores in zip(sides, folders, unmix_cores, strict=True)]
    deadline = guard_deadline(budget)
    umx = train_open_unmix_on(umx_cores, splits, rate, budget, seed=repeat)
    runs = [finish_unmix_training(process, working, deadline)
            for process, working in zip(processes, folders, strict=True)]
    return runs, umx


def run_trial(repeat: int, sides: list[tuple[Path, Configuration]], folder: Path, splits: tuple[list, list, list],
              budget: float, shares: list[list[int]] | None) -> Trial:
    """Train and score every side once; repeat `repeat` gets its own working folders and Open-Unmix seed."""
    test = splits[2]
    runs, umx = train_all(repeat, sides, folder, splits, budget, shares)
    scores: list = []
    trained: dict[str, str] = {}
    speeds: dict[str, float] = {}
    for (configuration, settings), (run, seconds) in zip(sides, runs, strict=True):
        name = side_name(configuration)
        side_scores, trained[name], speeds[name] = score_unmix(configuration, settings, run, seconds, test)
        scores += side_scores if not scores else [score for score in side_scores if score.method == name]

    rate = sides[0][1].collection.sample_rate
    umx_engine = OpenUnmixEngine(umx, sides[0][1])
    umx_scores = score_songs(umx_engine, test, jobs=2)
    scores += [attrs.evolve(score, method=BASELINE) for score in umx_scores if score.method == "model"]
    speeds[BASELINE] = separation_speed(umx_engine, test)
    trained[BASELINE] = (f"{umx.steps} steps ({umx.epochs:.2f} epochs) in {umx.seconds:.0f} s, "
                         f"{umx.parameters:,} parameters, n_fft {umx.n_fft}, hop {umx.hop_length}, {rate} Hz, "
                         f"{channel_handling(test[0].channels, umx.channels)}, "
                         f"best validation loss {umx.best_validation_loss}")
    write_scores(scores, folder / f"repeat-{repeat}" / "scores.json")
    return Trial(scores, aggregate(scores), trained, speeds)


def describe_collection(collection: Path) -> str:
    """A demo collection's seed and held-out pieces, from its demo.json: which protocol row a result belongs to."""
    description = collection / "demo.json"
    if not description.is_file():
        return "not a demo collection"
    settings = json.loads(description.read_text())["settings"]
    excluded = len(settings.get("excluded_pieces", []))
    return f"demo seed {settings['seed']}, {settings['target']}" + (f", {excluded} pieces held out" if excluded else "")


def side_name(configuration: Path) -> str:
    """The configuration's file name without the '-budget' the child configuration adds."""
    return configuration.stem.removesuffix("-budget")


def same_split(sides: list[tuple[Path, Configuration]]) -> None:
    """Every side must train and be tested on the same songs, or the table compares different things."""
    def split_settings(settings: Configuration) -> tuple:
        collection = settings.collection
        return (collection.sample_rate, collection.target, collection.test_data_count, collection.validation_ratio,
                collection.song_limit)

    first_path, first = sides[0]
    for path, settings in sides[1:]:
        if split_settings(settings) != split_settings(first):
            raise SystemExit(f"{side_name(path)}: its collection settings (rate, target, split) differ from "
                             f"{side_name(first_path)}'s; compare configurations that split the songs alike")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--configuration", type=Path, action="append",
                        help="an unmix side; give it again for more sides [default: configurations/quickstart.jsonc]")
    parser.add_argument("--collection", type=Path, default=None, help="default: a fresh `unmix datasets demo`")
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="training wall time per model")
    parser.add_argument("--output", type=Path, default=None, help="keep runs and data here (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=1, help="train both this many times; median and spread")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="threads for PyTorch and TensorFlow alike [default: every core]")
    parser.add_argument("--songs", type=int, default=24, help="songs in the demo collection made without --collection")
    parser.add_argument("--song-seconds", type=float, default=None, help="length of each demo song [default: demo's]")
    parser.add_argument("--demo-seed", type=int, default=0,
                        help="the demo collection's seed: 0 is where settings are tuned, others are held out")
    parser.add_argument("--target", default=None,
                        help="the instrument to separate (the demo's --target, and collection.target of every side) "
                             "[default: the configuration's]")
    parser.add_argument("--exclude-pieces-of", type=Path, action="append", default=[],
                        help="a demo collection whose pieces the new demo collection must not play (held-out music)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="train every side at once, each pinned to an equal share of the cores with one "
                             "thread per core (a repeat takes one budget instead of one per side)")
    arguments = parser.parse_args()
    budget = 60.0 * arguments.budget_minutes
    use_threads(arguments.threads)

    with tempfile.TemporaryDirectory(prefix="unmix-bench-quality-") as temporary:
        folder = arguments.output or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        collection = arguments.collection or make_demo_collection(
            folder / "data", arguments.songs, arguments.song_seconds, arguments.demo_seed, arguments.target,
            arguments.exclude_pieces_of)
        configurations = arguments.configuration or [REPOSITORY / "configurations" / "quickstart.jsonc"]
        sides = []
        for configuration in configurations:
            child = budget_configuration(configuration, collection, folder, budget, arguments.target)
            sides.append((child, load_configuration(child).settings))
        same_split(sides)
        settings = sides[0][1]
        split = split_collection(settings.collection, lambda path: collection_songs(settings, path))
        splits = tuple(loaded(songs) for songs in (split.training, split.validation, split.test))
        print(f"collection: {collection} ({describe_collection(collection)}), target {settings.collection.target}")
        print(f"songs: {len(splits[0])} training, {len(splits[1])} validation, {len(splits[2])} test; "
              f"budget {arguments.budget_minutes:g} min per model, {arguments.repeats} run(s) of each")
        print(f"CPU: {describe_cpu()}\nthreads: {describe_threads()}", flush=True)
        shares = core_groups(sorted(os.sched_getaffinity(0)), len(sides) + 1) if arguments.side_by_side else None
        if shares is not None:
            *unmix_cores, umx_cores = shares
            pinned = ", ".join(f"{side_name(path)} on cores {cores}" for (path, _), cores in
                               zip(sides, unmix_cores, strict=True))
            print(f"side by side, one thread per core while training: {pinned}, {BASELINE} on cores {umx_cores}",
                  flush=True)

        trials = []
        for repeat in range(arguments.repeats):
            trial = run_trial(repeat, sides, folder, splits, budget, shares)
            print_table(trial.summary, len(splits[2]), settings.collection.target, trial.trained, trial.speeds)
            print_per_song(trial.scores, ["mixture", *trial.trained, "oracle"])
            trials.append(trial)
        if len(trials) > 1:
            print_spreads(trials, len(splits[2]), settings.collection.target)
        print(f"CPU: {describe_cpu()}", flush=True)


if __name__ == "__main__":
    main()
