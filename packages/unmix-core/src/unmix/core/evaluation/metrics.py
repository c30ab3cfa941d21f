"""Separation scores for one song, the baselines that bracket them, and their aggregation over songs.

The seed reported mir_eval's whole-track `bss_eval_sources` and called it BSSEval v4; it was not.
Numbers from different toolkits differ by several dB on the same audio, so every value here is
stored under a name that says which metric produced it, and a report never shows a bare "SDR".

Metric names (keys of `SongScores.stems[stem]`; stems are "target" and "rest"), all in dB except
the two frame counts:

- `museval_sdr`, `museval_sir`, `museval_sar`, `museval_isr`: museval BSSEval v4 (bss_eval_images
  with time-invariant distortion filters) on 1 s frames with 1 s hop; the song value is the median
  over frames, leaving out NaN frames (the SiSEC convention). museval frames only whole seconds:
  the trailing partial second of a song is not scored.
- `museval_frames`, `museval_nan_frames`: how many 1 s frames the song had and how many museval
  left NaN because a reference or estimate frame was silent (museval blanks the frame for every
  stem when any one is silent, so the two stems always have the same counts).
- `bss_sdr`, `bss_sir`, `bss_sar`: mir_eval `bss_eval_sources` (BSS Eval v3 style, 512-tap
  filters, no permutation) on the whole track, one channel at a time, then averaged over channels:
  exactly what the seed computed, kept so its published numbers can be compared.
- `si_sdr`: scale-invariant SDR (Le Roux et al., "SDR - half-baked or well done?", ICASSP 2019),
  with the channels of a stem taken as one long signal and no mean removal (the paper's equation).
- `sdr`: whole-track plain SDR, 10 log10(||s||^2 / ||s - s_hat||^2) over all channels; no filter
  or gain forgives anything, so it is the strictest of the four and trivially reproducible.

Our own two (`si_sdr`, `sdr`) are clipped to +/-`MAX_DB` so that a perfect estimate (error energy
exactly zero, as for the mixture baseline of a song whose rest is silent) or a silent estimate
gives a large finite number instead of an infinity that would make every mean over songs infinite. museval and mir_eval
values are passed through unchanged, infinities included, so they equal a direct call.

Nothing here is fatal for a silent stem: the affected values are NaN and `SongScores.notes` says
why, because one a cappella song must not stop the evaluation of a whole collection.

museval and mir_eval are imported inside the functions that use them: they pull in scipy and take
a noticeable time to import, which commands that never evaluate should not pay.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import numpy as np

from unmix.core.data.audio import istft, stft
from unmix.core.errors import first_line

__all__ = [
    "BSS_METRICS",
    "DEFAULT_FFT_LENGTH",
    "MAX_DB",
    "METRIC_FAMILIES",
    "MUSEVAL_COUNTS",
    "MUSEVAL_METRICS",
    "STEMS",
    "SongScores",
    "Summary",
    "aggregate",
    "baseline_scores",
    "fraction_of_gap",
    "ideal_ratio_mask",
    "oracle_estimates",
    "score_song",
    "si_sdr",
    "whole_track_sdr",
]

STEMS = ("target", "rest")
METRIC_FAMILIES = ("museval", "bss", "si_sdr", "sdr")
MUSEVAL_METRICS = ("museval_sdr", "museval_sir", "museval_sar", "museval_isr")
MUSEVAL_COUNTS = ("museval_frames", "museval_nan_frames")
BSS_METRICS = ("bss_sdr", "bss_sir", "bss_sar")
MAX_DB = 200.0
DEFAULT_FFT_LENGTH = 1536

# mir_eval 0.8 deprecates mir_eval.separation on every call; the dependency is pinned below 0.9,
# so the warning says nothing a user can act on and would repeat once per song and channel.
_MIR_EVAL_DEPRECATION = re.escape("mir_eval.separation.bss_eval_sources")


# --------------------------------------------------------------------------------------------
# Records


def _notes(value: Iterable[str]) -> tuple[str, ...]:
    """Unique notes in first-seen order: a problem found per channel should be read once."""
    return tuple(dict.fromkeys(value))


@attrs.frozen
class SongScores:
    """One method's scores for one song, with the reasons for any NaN in them.

    `method` is "model", "mixture" or "oracle" (or any other label a caller compares); `stems`
    maps "target" and "rest" to {metric name: value} (names in the module docstring).
    """

    song: str
    method: str
    stems: dict[str, dict[str, float]]
    notes: tuple[str, ...] = attrs.field(default=(), converter=_notes)

    def flat(self) -> dict[str, float]:
        """One `<stem>_<metric>` key per value, the shape a CSV row or a JSON record wants."""
        return {f"{stem}_{name}": value for stem, values in self.stems.items() for name, value in values.items()}


@attrs.frozen
class Summary:
    """A metric over songs; `songs` counts the values used and `missing` the NaN ones left out,
    so a median over 3 of 50 songs cannot pass for a median over all 50."""

    median: float
    mean: float
    songs: int
    missing: int


# --------------------------------------------------------------------------------------------
# Input checks


def _as_signal(value: Any, label: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise ValueError(f"{label} must be shaped (channels, samples) or (samples,), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{label} must hold real samples, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{label} contains NaN or infinite samples; check the model's output")
    return array


def _signals(named: dict[str, Any]) -> dict[str, np.ndarray]:
    """All arrays as float64 of one shape, because every toolkit below would otherwise pad,
    truncate or broadcast differently and the metrics would stop describing the same audio."""
    arrays = {label: _as_signal(value, label) for label, value in named.items()}
    shapes = {label: array.shape for label, array in arrays.items()}
    if len(set(shapes.values())) != 1:
        described = ", ".join(f"{label} {shape}" for label, shape in shapes.items())
        raise ValueError(
            f"references and estimates must have the same (channels, samples) shape, got {described}; "
            "trim or pad the estimates to the references (e.g. istft(..., length=samples))"
        )
    if next(iter(shapes.values()))[1] == 0:
        raise ValueError("the song has no samples; nothing to score")
    return arrays


def _check_sample_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


def _check_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
    wanted = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [name for name in wanted if name not in METRIC_FAMILIES]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRIC_FAMILIES)}")
    return tuple(dict.fromkeys(wanted))


def _silent(signal: np.ndarray) -> bool:
    return not np.any(signal)


# --------------------------------------------------------------------------------------------
# Our own metrics


def _ratio_db(numerator: float, denominator: float) -> float:
    """10 log10(numerator / denominator) clipped to +/-MAX_DB, so a zero error (or a zero target
    part) gives a finite, obviously extreme value instead of an infinity."""
    if numerator <= 0.0:
        return -MAX_DB
    if denominator <= 0.0:
        return MAX_DB
    return float(min(MAX_DB, max(-MAX_DB, 10.0 * math.log10(numerator / denominator))))


def whole_track_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Plain SDR over all channels and the whole track; NaN for a silent reference (0/0 or 0/x
    would only say that there was nothing to find)."""
    s = np.asarray(reference, dtype=np.float64).ravel()
    s_hat = np.asarray(estimate, dtype=np.float64).ravel()
    if s.shape != s_hat.shape:
        raise ValueError(f"reference and estimate must have the same shape, got {s.shape} and {s_hat.shape}")
    energy = float(s @ s)
    if energy == 0.0:
        return math.nan
    error = s - s_hat
    return _ratio_db(energy, float(error @ error))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR: the reference is rescaled by the least-squares gain before the error is
    measured, so a too loud or too quiet but otherwise perfect estimate is not punished.

    The channels are one long signal (one gain for the whole stem, as a volume knob would apply).
    No mean is removed: audio has no DC worth speaking of, and the paper's equation has none.
    NaN for a silent reference, where no gain is defined; -MAX_DB for a silent estimate of a
    sounding reference (the formula's 0/0, but it found nothing, which is the worst outcome).
    """
    s = np.asarray(reference, dtype=np.float64).ravel()
    s_hat = np.asarray(estimate, dtype=np.float64).ravel()
    if s.shape != s_hat.shape:
        raise ValueError(f"reference and estimate must have the same shape, got {s.shape} and {s_hat.shape}")
    energy = float(s @ s)
    if energy == 0.0:
        return math.nan
    if not np.any(s_hat):
        return -MAX_DB
    scaled = (float(s_hat @ s) / energy) * s
    error = scaled - s_hat
    return _ratio_db(float(scaled @ scaled), float(error @ error))


# --------------------------------------------------------------------------------------------
# Toolkit metrics


def _median_ignoring_nan(values: np.ndarray) -> float:
    finite_or_inf = values[~np.isnan(values)]
    return float(np.median(finite_or_inf)) if finite_or_inf.size else math.nan


def _museval(
    references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], sample_rate: int, notes: list[str]
) -> dict[str, dict[str, float]]:
    samples = references["target"].shape[1]
    frames = samples // sample_rate
    nan_values = dict.fromkeys(MUSEVAL_METRICS, math.nan)
    if frames == 0:
        # museval would score the whole short song as one frame shorter than 1 s: a number, but not
        # the SiSEC one, and mixing it into medians of 1 s frames would hide that.
        notes.append(f"song is {samples / sample_rate:.2f} s, shorter than one 1 s museval frame: museval_* are NaN")
        return {stem: {**nan_values, "museval_frames": 0.0, "museval_nan_frames": 0.0} for stem in STEMS}

    silent = [f"{stem} reference" for stem in STEMS if _silent(references[stem])]
    silent += [f"{stem} estimate" for stem in STEMS if _silent(estimates[stem])]
    if silent:
        # museval refuses a source that is silent over the whole song (ValueError); checked here so
        # the note can name it.
        notes.append(f"{' and '.join(silent)} silent over the whole song: museval_* are NaN")
        counts = {"museval_frames": float(frames), "museval_nan_frames": float(frames)}
        return {stem: {**nan_values, **counts} for stem in STEMS}

    import museval

    # museval wants (sources, samples, channels).
    reference_array = np.stack([references[stem].T for stem in STEMS])
    estimate_array = np.stack([estimates[stem].T for stem in STEMS])
    try:
        sdr, isr, sir, sar = museval.evaluate(reference_array, estimate_array, win=sample_rate, hop=sample_rate)
    except ValueError as error:
        notes.append(f"museval failed ({first_line(error)}): museval_* are NaN")
        counts = {"museval_frames": float(frames), "museval_nan_frames": float(frames)}
        return {stem: {**nan_values, **counts} for stem in STEMS}

    result = {}
    for index, stem in enumerate(STEMS):
        nan_frames = int(np.count_nonzero(np.isnan(sdr[index])))
        result[stem] = {
            "museval_sdr": _median_ignoring_nan(sdr[index]),
            "museval_sir": _median_ignoring_nan(sir[index]),
            "museval_sar": _median_ignoring_nan(sar[index]),
            "museval_isr": _median_ignoring_nan(isr[index]),
            "museval_frames": float(sdr.shape[1]),
            "museval_nan_frames": float(nan_frames),
        }
    nan_frames = int(result["target"]["museval_nan_frames"])
    if nan_frames:
        notes.append(
            f"museval: {nan_frames} of {sdr.shape[1]} frames NaN (a silent reference or estimate frame), "
            "left out of the median"
        )
    return result


def _bss(
    references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], notes: list[str]
) -> dict[str, dict[str, float]]:
    from mir_eval.separation import bss_eval_sources

    channels = references["target"].shape[0]
    per_channel = np.full((channels, 3, len(STEMS)), np.nan)  # (channel, sdr/sir/sar, stem)
    for channel in range(channels):
        reference = np.stack([references[stem][channel] for stem in STEMS])
        estimate = np.stack([estimates[stem][channel] for stem in STEMS])
        silent = [f"{stem} reference" for stem, row in zip(STEMS, reference, strict=True) if _silent(row)]
        silent += [f"{stem} estimate" for stem, row in zip(STEMS, estimate, strict=True) if _silent(row)]
        if silent:
            # mir_eval raises ValueError for an all-zero source; said here in words a user can act on.
            notes.append(f"channel {channel}: {' and '.join(silent)} silent, bss_* cannot be computed on it")
            continue
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_MIR_EVAL_DEPRECATION, category=FutureWarning)
                sdr, sir, sar, _ = bss_eval_sources(reference, estimate, compute_permutation=False)
        except (ValueError, np.linalg.LinAlgError) as error:
            notes.append(f"channel {channel}: mir_eval failed ({first_line(error)}), bss_* cannot be computed on it")
            continue
        per_channel[channel] = [sdr, sir, sar]

    usable = ~np.isnan(per_channel[:, 0, 0])
    if not usable.any():
        notes.append("bss_* are NaN: no channel could be scored")
    elif not usable.all():
        notes.append(f"bss_* are the mean over channels {np.flatnonzero(usable).tolist()} only")
    result = {}
    for index, stem in enumerate(STEMS):
        values = per_channel[usable, :, index].mean(axis=0) if usable.any() else np.full(3, np.nan)
        result[stem] = {name: float(value) for name, value in zip(BSS_METRICS, values, strict=True)}
    return result


# --------------------------------------------------------------------------------------------
# Scoring


def score_song(
    song_name: str,
    target: np.ndarray,
    rest: np.ndarray,
    estimate_target: np.ndarray,
    estimate_rest: np.ndarray,
    sample_rate: int,
    method: str = "model",
    metrics: str | Sequence[str] = METRIC_FAMILIES,
) -> SongScores:
    """Score one song's two estimates against its two true stems with the chosen metric families.

    Arrays are (channels, samples) (or 1-D for mono), all of one shape and one `sample_rate`; any
    real dtype is accepted and computed in float64. `metrics` picks among "museval", "bss",
    "si_sdr" and "sdr": museval and bss take seconds per song, the other two milliseconds.
    Silent stems and songs under 1 s give NaN values with a note rather than an error.
    """
    sample_rate = _check_sample_rate(sample_rate)
    families = _check_metrics(metrics)
    arrays = _signals(
        {"target": target, "rest": rest, "estimate_target": estimate_target, "estimate_rest": estimate_rest}
    )
    references = {"target": arrays["target"], "rest": arrays["rest"]}
    estimates = {"target": arrays["estimate_target"], "rest": arrays["estimate_rest"]}
    notes: list[str] = []
    stems: dict[str, dict[str, float]] = {stem: {} for stem in STEMS}

    if "museval" in families:
        for stem, values in _museval(references, estimates, sample_rate, notes).items():
            stems[stem].update(values)
    if "bss" in families:
        for stem, values in _bss(references, estimates, notes).items():
            stems[stem].update(values)
    own = [family for family in ("si_sdr", "sdr") if family in families]
    if own:
        for stem in STEMS:
            if _silent(references[stem]):
                notes.append(f"{stem} reference is silent: {' and '.join(own)} are NaN")
            elif _silent(estimates[stem]):
                notes.append(f"{stem} estimate is silent")
        for stem in STEMS:
            if "si_sdr" in own:
                stems[stem]["si_sdr"] = si_sdr(references[stem], estimates[stem])
            if "sdr" in own:
                stems[stem]["sdr"] = whole_track_sdr(references[stem], estimates[stem])
    return SongScores(song=song_name, method=method, stems=stems, notes=notes)


def ideal_ratio_mask(target_spectrogram: np.ndarray, rest_spectrogram: np.ndarray) -> np.ndarray:
    """|T| / (|T| + |R|): the magnitude-ratio IRM (power 1) of Open-Unmix and the SiSEC oracles.

    Where both stems are zero the mixture is zero too, so the mask value there does not matter;
    it is 0 rather than 0/0.
    """
    target_magnitude = np.abs(target_spectrogram)
    total = target_magnitude + np.abs(rest_spectrogram)
    return np.divide(target_magnitude, total, out=np.zeros_like(total), where=total > 0)


def oracle_estimates(
    target: np.ndarray, rest: np.ndarray, fft_length: int = DEFAULT_FFT_LENGTH, hop_length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """What a perfect mask model would output: the IRM from the true stems applied to the mixture's
    STFT, keeping the mixture's phase, with the same STFT the models use.

    The rest is mix - target estimate, so the two estimates sum to the mixture as a model's do.
    Returns float32 arrays of the input shape. It is the customary ceiling, not a strict bound: a
    phase-sensitive mask can score higher, so a model may land above it.
    """
    arrays = _signals({"target": target, "rest": rest})
    mix = (arrays["target"] + arrays["rest"]).astype(np.float32)
    samples = mix.shape[1]
    mask = ideal_ratio_mask(
        stft(arrays["target"], fft_length, hop_length), stft(arrays["rest"], fft_length, hop_length)
    )
    target_hat = istft(mask * stft(mix, fft_length, hop_length), hop_length, length=samples)
    rest_hat = mix - target_hat
    return target_hat.astype(np.float32), rest_hat.astype(np.float32)


def baseline_scores(
    song_name: str,
    target: np.ndarray,
    rest: np.ndarray,
    sample_rate: int,
    fft_length: int = DEFAULT_FFT_LENGTH,
    hop_length: int | None = None,
    metrics: str | Sequence[str] = METRIC_FAMILIES,
) -> list[SongScores]:
    """The floor and the ceiling for one song, scored exactly as the model is: [mixture, oracle].

    "mixture" takes the mix as both estimates (what doing nothing scores); "oracle" is
    `oracle_estimates` (the IRM on the mixture phase). `hop_length` None is fft_length // 4.
    """
    arrays = _signals({"target": target, "rest": rest})
    mix = (arrays["target"] + arrays["rest"]).astype(np.float32)
    target_hat, rest_hat = oracle_estimates(arrays["target"], arrays["rest"], fft_length, hop_length)
    return [
        score_song(song_name, arrays["target"], arrays["rest"], mix, mix, sample_rate, "mixture", metrics),
        score_song(song_name, arrays["target"], arrays["rest"], target_hat, rest_hat, sample_rate, "oracle", metrics),
    ]


# --------------------------------------------------------------------------------------------
# Over songs


def aggregate(scores: Iterable[SongScores]) -> dict[str, dict[str, dict[str, Summary]]]:
    """Median and mean over songs per method, stem and metric, leaving NaN songs out and counting them.

    Returns {method: {stem: {metric: Summary}}} in first-seen order. A song that lacks a metric
    another song has counts as missing for it. Infinite values (museval or mir_eval on a perfect
    estimate) stay: the median copes, the mean becomes infinite and says so. A song scored twice
    for one method is an error, since it would count double.
    """
    collected: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    songs: dict[str, list[str]] = {}
    for record in scores:
        method_songs = songs.setdefault(record.method, [])
        if record.song in method_songs:
            raise ValueError(f"song '{record.song}' is scored twice for method '{record.method}'")
        method_songs.append(record.song)
        by_stem = collected.setdefault(record.method, {})
        for stem, values in record.stems.items():
            by_metric = by_stem.setdefault(stem, {})
            for name, value in values.items():
                by_metric.setdefault(name, {})[record.song] = float(value)

    result: dict[str, dict[str, dict[str, Summary]]] = {}
    for method, by_stem in collected.items():
        result[method] = {}
        for stem, by_metric in by_stem.items():
            result[method][stem] = {}
            for name, by_song in by_metric.items():
                values = np.array([by_song.get(song, math.nan) for song in songs[method]])
                present = values[~np.isnan(values)]
                result[method][stem][name] = Summary(
                    median=float(np.median(present)) if present.size else math.nan,
                    mean=float(np.mean(present)) if present.size else math.nan,
                    songs=int(present.size),
                    missing=int(values.size - present.size),
                )
    return result


def fraction_of_gap(model: Any, mixture: Any, oracle: Any) -> Any:
    """Where the model stands between doing nothing (0) and the oracle mask (1).

    (model - mixture) / (oracle - mixture) for dB metrics where higher is better; below 0 is worse
    than returning the mix, above 1 beats the IRM (possible, see `oracle_estimates`). NaN where the
    oracle does not beat the mixture, since the gap then measures nothing. Floats give a float,
    arrays broadcast and give an array.
    """
    model_array, floor, ceiling = (np.asarray(value, dtype=np.float64) for value in (model, mixture, oracle))
    gap = ceiling - floor
    with np.errstate(invalid="ignore"):
        valid = gap > 0
    shape = np.broadcast(model_array, gap).shape
    fraction = np.divide(model_array - floor, gap, out=np.full(shape, np.nan), where=valid)
    return float(fraction) if fraction.ndim == 0 else fraction
