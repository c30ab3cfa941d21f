"""Evaluating a run: separate held-out songs, score them, and put the model between its baselines.

Every song is scored three ways with the same metrics (`unmix.core.evaluation.metrics`): the model's
estimate, the mixture as the estimate (the floor) and the ideal ratio mask on the mixture phase
(the ceiling of any mask model). Separation runs in this process (the model is loaded once);
scoring, the slow part (museval and mir_eval take seconds per song), runs in `jobs` processes.

Outputs in the run folder: accuracy.csv (one median row per method and evaluation, the seed's
`voc_*`/`inst_*` columns first, then every metric by name), evaluation.json (every song, every
metric, the summaries), evaluation.txt (the table also printed), plots/evaluation_sdr.png (per
song bars) and plots/spectrograms_<song>.png for the first few songs.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from tqdm import tqdm

from unmix.core.data.audio import check_finite, stft
from unmix.core.data.collection import split_songs
from unmix.core.data.training_data import collection_songs
from unmix.core.errors import UnmixError
from unmix.core.evaluation.metrics import SongScores, Summary, aggregate, baseline_scores, fraction_of_gap, score_song
from unmix.core.files import atomic_path, write_json_atomically, write_text_atomically
from unmix.core.runs import RunFolder, open_run_folder
from unmix.core.separation.prediction import Engine, load_engine, run_model_files

log = logging.getLogger("unmix")

METHODS = ("model", "mixture", "oracle")
SEED_COLUMNS = {"voc_sdr": ("target", "bss_sdr"), "voc_sir": ("target", "bss_sir"), "voc_sar": ("target", "bss_sar"),
                "inst_sdr": ("rest", "bss_sdr"), "inst_sir": ("rest", "bss_sir"), "inst_sar": ("rest", "bss_sar")}
HEADLINE_METRICS = ("museval_sdr", "sdr", "si_sdr", "bss_sdr", "museval_sir", "museval_sar")
METRIC_DESCRIPTIONS = {
    "museval_*": "museval BSSEval v4, 1 s frames, median over frames (SiSEC convention)",
    "bss_*": "mir_eval bss_eval_sources on the whole track, per channel averaged (as unmix.io published its numbers)",
    "si_sdr": "scale-invariant SDR over the whole track (Le Roux et al. 2019)",
    "sdr": "plain whole-track SDR, 10 log10 |s|^2 / |s - s_hat|^2",
}
SPECTROGRAM_PLOTS = 3


@attrs.frozen
class Evaluation:
    songs: tuple[str, ...]
    scores: tuple[SongScores, ...]
    summary: dict[str, dict[str, dict[str, Summary]]]
    table: str


def test_songs(run: RunFolder, collection: Path | None, test_data_count: int | None) -> list:
    """The songs to evaluate: the last `test_data_count` of the collection in md5 order (the seed's rule).

    Without --collection, the run's own collection; without a count, the run's
    collection.test_data_count, or every song of an explicitly given collection if that is 0.
    """
    settings = run.load_configuration().settings
    folder = collection if collection is not None else Path(settings.collection.folder)
    songs = collection_songs(settings, Path(folder))
    count = settings.collection.test_data_count if test_data_count is None else test_data_count
    if count <= 0:
        if collection is None:
            raise UnmixError(f"run '{run.path}' keeps no test songs (collection.test_data_count is 0); "
                             "give --collection DIR of held-out songs or --test-data-count N")
        return list(songs)
    return list(split_songs(songs, test_data_count=count).test)


def evaluate_run(run_folder: str | Path, collection: str | Path | None = None, test_data_count: int | None = None,
                 jobs: int = 1, epoch: int | None = None, progress: bool = True,
                 engine: Engine | None = None) -> Evaluation:
    """Score a run on held-out songs and write its reports; see the module docstring.

    The run folder and the songs are checked before the model is loaded.
    """
    run = open_run_folder(run_folder)
    model_files = run_model_files(run)
    songs = test_songs(run, Path(collection) if collection is not None else None, test_data_count)
    if not songs:
        settings = model_files.settings
        raise UnmixError(f"no songs with a '{settings.collection.target}' stem to evaluate in "
                         f"'{collection or settings.collection.folder}'")
    engine = engine or load_engine(model_files)
    scores = score_songs(engine, songs, jobs=jobs, progress=progress, plot_run=run)
    return write_reports(run, engine, scores, epoch=epoch)


def score_songs(engine: Engine, songs: Sequence[Any], jobs: int = 1, progress: bool = True,
                plot_run: RunFolder | None = None) -> list[SongScores]:
    """Separate each song here and score model, mixture and oracle in `jobs` worker processes.

    With `plot_run`, the first few songs also get a mixture / target / estimate spectrogram plot.
    """
    settings = engine.settings
    arguments = []
    for index, song in enumerate(tqdm(songs, desc="separating", unit="song", disable=not progress, leave=False)):
        audio = song.load() if hasattr(song, "load") else song
        target, rest = finite_stems(song, audio)
        estimate = engine.separate_samples(target + rest)
        if plot_run is not None and index < SPECTROGRAM_PLOTS:
            plot_spectrograms(plot_run, audio.name, target + rest, target, estimate, engine)
        arguments.append((audio.name, target, rest, estimate, (target + rest) - estimate, engine.sample_rate,
                          settings.spectrogram_generation.fft_length, settings.hop_length))
    scores: list[SongScores] = []
    bar = tqdm(total=len(arguments), desc="scoring", unit="song", disable=not progress, leave=False)
    if jobs <= 1:
        for argument in arguments:
            scores.extend(_score_one(argument))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for result in pool.map(_score_one, arguments):
                scores.extend(result)
                bar.update()
    bar.close()
    return scores


def finite_stems(song: Any, audio: Any) -> tuple[np.ndarray, np.ndarray]:
    """The target and rest as float32, refusing NaN or infinite samples before they reach the model.

    Otherwise they come out of the metrics as a NaN score that looks like the model's fault. The
    message names the stem's file (the cached copy for cached songs) and the sample's position.
    """
    stems = []
    for stem in ("target", "rest"):
        samples = np.asarray(getattr(audio, stem), dtype=np.float32)
        path = getattr(song, f"{stem}_path", None)
        check_finite(samples, f"song '{audio.name}', {stem} stem" + (f" ('{path}')" if path is not None else ""))
        stems.append(samples)
    return stems[0], stems[1]


def _score_one(argument: tuple) -> list[SongScores]:
    name, target, rest, estimate_target, estimate_rest, sample_rate, fft_length, hop_length = argument
    model = score_song(name, target, rest, estimate_target, estimate_rest, sample_rate, method="model")
    return [model, *baseline_scores(name, target, rest, sample_rate, fft_length, hop_length)]


def write_reports(run: RunFolder, engine: Engine, scores: Sequence[SongScores], epoch: int | None) -> Evaluation:
    summary = aggregate(scores)
    for note in sorted({note for score in scores for note in score.notes}):
        log.warning("%s", note)
    songs = tuple(dict.fromkeys(score.song for score in scores))
    table = format_table(summary, len(songs), engine.target)
    append_accuracy_rows(run.file("accuracy.csv"), summary, epoch)
    write_json_atomically(run.file("evaluation.json"), {
        "run": str(run.path),
        "epoch": epoch,
        "target": engine.target,
        "sample_rate": engine.sample_rate,
        "metrics": METRIC_DESCRIPTIONS,
        "songs": [{"song": s.song, "method": s.method, "stems": s.stems, "notes": list(s.notes)} for s in scores],
        "summary": {method: {stem: {metric: attrs.asdict(value) for metric, value in metrics.items()}
                             for stem, metrics in stems.items()} for method, stems in summary.items()},
    })
    write_text_atomically(run.file("evaluation.txt"), table + "\n")
    plot_song_sdr(run, scores, engine.target)
    return Evaluation(songs=songs, scores=tuple(scores), summary=summary, table=table)


def append_accuracy_rows(path: Path, summary: dict, epoch: int | None) -> None:
    """One median row per method, appended: training's accuracy tests and `unmix evaluate` share the file."""
    metric_columns = sorted({f"{stem}_{metric}" for stems in summary.values() for stem, metrics in stems.items()
                             for metric in metrics})
    columns = ["epoch", "type", *SEED_COLUMNS, *metric_columns]
    exists = path.is_file() and path.stat().st_size > 0
    if exists:
        with path.open(encoding="utf-8") as handle:
            header = next(csv.reader(handle, delimiter=";"))
        columns = header + [column for column in columns if column not in header]
    rows = []
    for method in METHODS:
        if method not in summary:
            continue
        row: dict[str, Any] = {"epoch": "" if epoch is None else epoch, "type": method}
        for column, (stem, metric) in SEED_COLUMNS.items():
            row[column] = _median(summary, method, stem, metric)
        for column in metric_columns:
            stem, metric = column.split("_", 1)
            row[column] = _median(summary, method, stem, metric)
        rows.append(row)
    with path.open("a", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter=";", extrasaction="ignore")
        if not exists:
            writer.writeheader()
        writer.writerows(rows)


def _median(summary: dict, method: str, stem: str, metric: str) -> float | str:
    value = summary.get(method, {}).get(stem, {}).get(metric)
    return "" if value is None or math.isnan(value.median) else round(value.median, 4)


def format_table(summary: dict, songs: int, target: str) -> str:
    """Medians over songs (dB) per metric: model next to its floor and ceiling, and the gap closed."""
    lines = [f"{songs} songs; medians over songs in dB; target = {target}",
             "floor = mixture as the estimate, ceiling = ideal ratio mask on the mixture phase",
             f"{'stem':<7}{'metric':<13}{'model':>9}{'mixture':>9}{'oracle':>9}{'gap closed':>12}"]
    for stem in ("target", "rest"):
        for metric in HEADLINE_METRICS:
            values = [summary.get(method, {}).get(stem, {}).get(metric) for method in METHODS]
            if values[0] is None:
                continue
            model, mixture, oracle = (v.median if v is not None else math.nan for v in values)
            gap = fraction_of_gap(model, mixture, oracle)
            gap_text = "" if math.isnan(gap) else f"{100 * gap:.0f}%"
            lines.append(f"{stem:<7}{metric:<13}{model:>9.2f}{mixture:>9.2f}{oracle:>9.2f}{gap_text:>12}")
    lines.append("metrics: " + "; ".join(f"{name}: {text}" for name, text in METRIC_DESCRIPTIONS.items()))
    return "\n".join(lines)


def plot_song_sdr(run: RunFolder, scores: Sequence[SongScores], target: str, metric: str = "museval_sdr") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    songs = list(dict.fromkeys(score.song for score in scores))
    by_method = {(score.song, score.method): score.stems["target"].get(metric, math.nan) for score in scores}
    figure, axis = plt.subplots(figsize=(max(7.0, 0.9 * len(songs) + 2), 5.5))
    width = 0.27
    positions = np.arange(len(songs))
    for offset, method in zip((-width, 0, width), METHODS, strict=True):
        axis.bar(positions + offset, [by_method.get((song, method), math.nan) for song in songs], width,
                 label=method)
    labels = [song if len(song) <= 28 else song[:27] + "…" for song in songs]
    axis.set_xticks(positions, labels, rotation=40, ha="right", fontsize=8)
    axis.set_ylabel(f"{target} {metric} (dB)")
    axis.set_title(f"{target} {metric} per song: model between its floor (mixture) and ceiling (oracle)\n{run.name}",
                   fontsize=10)
    axis.axhline(0, color="black", linewidth=0.5)
    axis.legend()
    figure.tight_layout()
    path = run.folder("plots") / "evaluation_sdr.png"
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_spectrograms(run: RunFolder, song: str, mix: np.ndarray, target: np.ndarray, estimate: np.ndarray,
                      engine: Engine) -> Path:
    """Mixture, true target and estimated target side by side (first channel, dB, first 30 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate, hop = engine.sample_rate, engine.settings.hop_length
    fft_length = engine.settings.spectrogram_generation.fft_length
    shown = slice(0, 30 * rate)
    figure, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True, sharey=True)
    for axis, (title, signal) in zip(axes, (("mixture", mix), (f"true {engine.target}", target),
                                            (f"estimated {engine.target}", estimate)), strict=True):
        magnitude = np.abs(stft(signal[0, shown], fft_length, hop))
        decibels = 20 * np.log10(magnitude + 1e-6)
        extent = (0, magnitude.shape[1] * hop / rate, 0, rate / 2000)
        image = axis.imshow(decibels, origin="lower", aspect="auto", extent=extent, cmap="magma",
                            vmin=decibels.max() - 80, vmax=decibels.max())
        axis.set_title(title)
        axis.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    figure.colorbar(image, ax=axes, label="dB")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in song)
    path = run.folder("plots") / f"spectrograms_{safe}.png"
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=90)
    plt.close(figure)
    return path


def accuracy_hook(jobs: int = 1) -> Callable:
    """An epoch hook for the training driver: evaluate the test songs every test_frequency epochs."""

    def hook(epoch: int, logs: dict, state: Any, context: Any) -> None:
        frequency = context.loaded.settings.collection.test_frequency
        if frequency <= 0 or epoch % frequency or not context.data.test_songs:
            return
        engine = Engine(model=context.model, transform=context.data.transform, settings=context.loaded.settings,
                        batch_size=context.loaded.settings.prediction.batch_size)
        scores = score_songs(engine, context.data.test_songs, jobs=jobs, progress=False)
        evaluation = write_reports(context.run, engine, scores, epoch=epoch)
        log.info("accuracy test after epoch %d:\n%s", epoch, evaluation.table)

    return hook
