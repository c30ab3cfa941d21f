"""Train, separate and evaluate one configuration, checking what every run must satisfy.

A model plugin's author should not have to know that the stems must add up to the input, keep its
length and rate, that losses must stay finite or where the checkpoints go: `round_trip` checks
all of it through the same code `unmix train`, `unmix predict` and `unmix evaluate` use, and
says in its assertion message which of them failed and with what numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np
import soundfile

from unmix.core.api import create_engine, separate
from unmix.core.evaluation.evaluate import evaluate_run, test_songs
from unmix.core.training.callbacks import read_results
from unmix.core.training.driver import train
from unmix.testing._assertions import require

__all__ = ["STEM_TOLERANCE", "RoundTrip", "round_trip"]

STEM_TOLERANCE = 1e-4
"""How far target + rest may be from the input, per sample: float32 rounding, nothing more."""


@attrs.frozen
class RoundTrip:
    """What one round trip produced, for a test to check further (or a person to listen to)."""

    run: Path
    """The run folder, as `unmix train` leaves it."""
    results: tuple[dict[str, float], ...]
    """results.csv, one row per epoch: `epoch`, `loss`, `val_loss`, the metrics, `lr`."""
    song: str
    """The test song that was separated."""
    mix: Path
    """The song's mix as a float wav file, at the model's rate."""
    stems: dict[str, Path]
    """The separated stems as float wav files: the target under its instrument's name, and "rest"."""
    evaluation: Path
    """The run's evaluation.json."""
    scores: dict[str, float]
    """The model's median score on the target per metric (`si_sdr`, `sdr`, `museval_sdr`, ...), in dB."""
    mixture_scores: dict[str, float]
    """The same for the mixture taken as the target: what a model that does nothing scores."""


def round_trip(configuration: str | Path, workdir: str | Path) -> RoundTrip:
    """Train `configuration` under `workdir`, separate its first test song, evaluate the run.

    The configuration needs at least one test song (`collection.test_data_count`), as
    `tiny_configuration` writes, and training needs a dataset layout that reads its collection
    (unmix-sources registers unmix's own). Raises AssertionError naming the first invariant the run breaks.
    """
    workdir = Path(workdir)
    run = train(configuration, working_directory=workdir)
    checkpoint_suffix = run.read_json(run.model_file).get("checkpoint_suffix", "")
    for name in ("best", "last"):
        checkpoint = run.path / "weights" / f"{name}{checkpoint_suffix}"
        require(checkpoint.is_file(), f"training left no {checkpoint.name} in '{checkpoint.parent}'; a model's "
                                      "save_checkpoint(path) must write exactly the path it is given")
    csv_logger = run.load_configuration().settings.training.callbacks.csv_logger
    results = tuple(read_results(run.file(csv_logger.file_name), csv_logger.separator))
    require(len(results) > 0, f"training wrote no epoch to {run.file(csv_logger.file_name)}")
    for row in results:
        bad = {key: value for key, value in row.items() if "loss" in key and not math.isfinite(value)}
        require(not bad, f"epoch {row.get('epoch')} has non-finite losses {bad}; the model diverged or "
                         "returned NaN (lower the learning rate, check the network's output)")

    songs = test_songs(run, None, None)
    require(len(songs) > 0, f"run '{run.path}' has no test song; set collection.test_data_count to at least 1")
    audio = songs[0].load()
    mix = np.asarray(audio.target, dtype=np.float32) + np.asarray(audio.rest, dtype=np.float32)
    engine = create_engine(run.path)
    target, rest = separate(engine, mix, audio.sample_rate)
    _check_stems(audio.name, mix, target, rest)

    folder = workdir / "separated"
    folder.mkdir(parents=True, exist_ok=True)
    mix_path = _write(folder / f"{audio.name}_mix.wav", mix, audio.sample_rate)
    stems = {engine.target: _write(folder / f"{audio.name}_{engine.target}.wav", target, audio.sample_rate),
             "rest": _write(folder / f"{audio.name}_rest.wav", rest, audio.sample_rate)}

    evaluation = evaluate_run(run.path, progress=False, engine=engine)
    report = run.file("evaluation.json")
    require(report.is_file(), f"the evaluation wrote no {report}")
    scores, mixture_scores = ({metric: float(summary.median) for metric, summary in metrics.items()}
                              for metrics in (evaluation.summary[method]["target"] for method in ("model", "mixture")))
    require(math.isfinite(scores.get("si_sdr", math.nan)),
            f"the evaluation has no finite SI-SDR for the model's target ({scores}); the separated stems are "
            "silent or not numbers")
    return RoundTrip(run=run.path, results=results, song=audio.name, mix=mix_path, stems=stems,
                     evaluation=report, scores=scores, mixture_scores=mixture_scores)


def _check_stems(song: str, mix: np.ndarray, target: np.ndarray, rest: np.ndarray) -> None:
    for stem, samples in (("target", target), ("rest", rest)):
        require(samples.shape == mix.shape, f"song '{song}': the {stem} has shape {samples.shape} but the mix "
                                            f"{mix.shape}; stems keep the input's channels and length")
        require(bool(np.all(np.isfinite(samples))), f"song '{song}': the {stem} holds NaN or infinite samples; "
                                                    "the model's predict() returned them")
    error = float(np.max(np.abs(target + rest - mix))) if mix.size else 0.0
    require(error <= STEM_TOLERANCE, f"song '{song}': target + rest differ from the mix by up to {error:.3g} "
                                     f"(at most {STEM_TOLERANCE:g} allowed)")


def _write(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    soundfile.write(path, np.asarray(samples, dtype=np.float32).T, sample_rate, subtype="FLOAT")
    return path
