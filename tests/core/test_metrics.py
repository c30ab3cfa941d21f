"""Separation metrics on signals whose scores are known in advance, and against direct toolkit calls.

Signals are short (2-3 s at 8 kHz): museval and mir_eval fit 512-tap filters whatever the length,
so their cost per call is mostly fixed and these sizes keep the module at a few seconds per score.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from unmix.core.evaluation.metrics import (
    BSS_METRICS,
    MAX_DB,
    MUSEVAL_METRICS,
    SongScores,
    Summary,
    aggregate,
    baseline_scores,
    fraction_of_gap,
    ideal_ratio_mask,
    oracle_estimates,
    score_song,
    si_sdr,
    whole_track_sdr,
)

RATE = 8000
SDR_METRICS = ("museval_sdr", "bss_sdr", "si_sdr", "sdr")


def noise(channels: int, seconds: float, seed: int, smooth: int = 1) -> np.ndarray:
    """Zero-mean Gaussian noise; `smooth` > 1 low-passes it so two stems can differ in spectrum."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * RATE)
    signal = rng.standard_normal((channels, samples + smooth - 1))
    if smooth > 1:
        kernel = np.ones(smooth) / smooth
        signal = np.stack([np.convolve(row, kernel, mode="valid") for row in signal])
    signal -= signal.mean(axis=1, keepdims=True)
    return (0.1 * signal / signal.std()).astype(np.float32)


def add_noise_at(reference: np.ndarray, level_db: float, seed: int) -> np.ndarray:
    """reference + white noise with SNR exactly `level_db` in every channel and every 1 s frame.

    The noise is made orthogonal to the reference in each (channel, second), so the whole-track
    SDR, SI-SDR (gain exactly 1) and museval's per-frame SDR all equal `level_db` analytically.
    """
    rng = np.random.default_rng(seed)
    s = reference.astype(np.float64)
    n = rng.standard_normal(s.shape)
    for start in range(0, s.shape[1], RATE):
        for channel in range(s.shape[0]):
            part_s = s[channel, start : start + RATE]
            part_n = n[channel, start : start + RATE]
            if not part_s.any():
                part_n[:] = 0.0  # silence estimated as silence
                continue
            part_n -= (part_n @ part_s) / (part_s @ part_s) * part_s
            part_n *= math.sqrt((part_s @ part_s) / (part_n @ part_n) / 10 ** (level_db / 10))
    return (s + n).astype(np.float32)


def museval_direct(references: list[np.ndarray], estimates: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    import museval

    return museval.evaluate(
        np.stack([x.T for x in references]).astype(np.float64),
        np.stack([x.T for x in estimates]).astype(np.float64),
        win=RATE,
        hop=RATE,
    )


def bss_direct(references: list[np.ndarray], estimates: list[np.ndarray], channel: int) -> tuple[np.ndarray, ...]:
    from mir_eval.separation import bss_eval_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return bss_eval_sources(
            np.stack([x[channel] for x in references]).astype(np.float64),
            np.stack([x[channel] for x in estimates]).astype(np.float64),
            compute_permutation=False,
        )


# --------------------------------------------------------------------------------------------
# Known scores


TARGET_DB = 10.0
REST_DB = 5.0


# Its three users are slow: museval and mir_eval on a stereo song take seconds.
@pytest.fixture(scope="module")
def noisy() -> dict[str, object]:
    """A stereo 3 s song with each stem estimated as itself plus white noise at a set SNR."""
    target = noise(2, 3.0, seed=1)
    rest = noise(2, 3.0, seed=2)
    estimate_target = add_noise_at(target, TARGET_DB, seed=3)
    estimate_rest = add_noise_at(rest, REST_DB, seed=4)
    scores = score_song("noisy", target, rest, estimate_target, estimate_rest, RATE)
    return {
        "references": [target, rest],
        "estimates": [estimate_target, estimate_rest],
        "scores": scores,
    }


@pytest.mark.slow
def test_noise_at_a_set_level_scores_the_analytic_sdr(noisy: dict[str, object]) -> None:
    scores = noisy["scores"]
    assert isinstance(scores, SongScores)
    assert scores.notes == ()
    for stem, level in (("target", TARGET_DB), ("rest", REST_DB)):
        values = scores.stems[stem]
        # Exact by construction: the noise energy is set, and orthogonal noise leaves the SI-SDR gain at 1.
        assert values["sdr"] == pytest.approx(level, abs=1e-3)
        assert values["si_sdr"] == pytest.approx(level, abs=1e-3)
        # museval's images SDR has no projection: per frame it is ||s||^2 / ||s_hat - s||^2, set per frame.
        assert values["museval_sdr"] == pytest.approx(level, abs=1e-3)
        # bss_eval_sources moves the noise's projection on the 512 delays of the reference from the
        # error to the target, so it can only read higher, by about -10 log10(1 - 512 / samples) = 0.09 dB.
        assert level <= values["bss_sdr"] <= level + 0.2
        assert values["museval_frames"] == 3
        assert values["museval_nan_frames"] == 0


@pytest.mark.slow
def test_values_equal_a_direct_museval_call(noisy: dict[str, object]) -> None:
    sdr, isr, sir, sar = museval_direct(noisy["references"], noisy["estimates"])
    for index, stem in enumerate(("target", "rest")):
        values = noisy["scores"].stems[stem]
        for name, frames in zip(MUSEVAL_METRICS, (sdr, sir, sar, isr), strict=True):
            np.testing.assert_allclose(values[name], np.median(frames[index]), rtol=1e-12)


@pytest.mark.slow
def test_values_equal_a_direct_mir_eval_call_averaged_over_channels(noisy: dict[str, object]) -> None:
    per_channel = [bss_direct(noisy["references"], noisy["estimates"], channel) for channel in range(2)]
    for index, stem in enumerate(("target", "rest")):
        values = noisy["scores"].stems[stem]
        for metric, name in enumerate(BSS_METRICS):
            expected = np.mean([result[metric][index] for result in per_channel])
            np.testing.assert_allclose(values[name], expected, rtol=1e-12)


@pytest.mark.slow
def test_a_perfect_estimate_scores_very_high() -> None:
    target, rest = noise(1, 2.0, seed=5), noise(1, 2.0, seed=6)
    scores = score_song("perfect", target, rest, target, rest, RATE)
    for stem in ("target", "rest"):
        values = scores.stems[stem]
        assert values["sdr"] == MAX_DB
        assert values["si_sdr"] == MAX_DB
        assert values["museval_sdr"] > 60
        assert values["bss_sdr"] > 60


@pytest.mark.slow
def test_swapped_stems_score_low() -> None:
    target, rest = noise(1, 2.0, seed=7), noise(1, 2.0, seed=8)
    scores = score_song("swapped", target, rest, rest, target, RATE)
    for stem in ("target", "rest"):
        for name in SDR_METRICS:
            assert scores.stems[stem][name] < 0, (stem, name, scores.stems[stem][name])


def test_own_metrics_on_small_known_vectors() -> None:
    reference = np.array([[1.0, 0.0, -1.0, 0.0]])
    # Error energy is a tenth of the signal's: exactly 10 dB.
    assert whole_track_sdr(reference, reference + np.array([[0.0, math.sqrt(0.2), 0.0, 0.0]])) == pytest.approx(10.0)
    # SI-SDR forgives a gain, the plain SDR does not.
    assert si_sdr(reference, 0.5 * reference) == MAX_DB
    assert whole_track_sdr(reference, 0.5 * reference) == pytest.approx(10 * math.log10(4))
    assert math.isnan(si_sdr(np.zeros((1, 4)), reference))
    assert math.isnan(whole_track_sdr(np.zeros((1, 4)), reference))


# --------------------------------------------------------------------------------------------
# Baselines


@pytest.mark.slow
def test_oracle_beats_the_mixture_and_the_mixture_scores_the_input_snr() -> None:
    # Spectrally different stems, so a mask can separate them: low-passed target, white rest.
    target = noise(1, 3.0, seed=9, smooth=8)
    rest = noise(1, 3.0, seed=10)
    mixture, oracle = baseline_scores("song", target, rest, RATE, fft_length=256)
    assert (mixture.method, oracle.method) == ("mixture", "oracle")
    assert mixture.song == oracle.song == "song"
    t, r = target.astype(np.float64), rest.astype(np.float64)
    assert mixture.stems["target"]["sdr"] == pytest.approx(10 * math.log10((t * t).sum() / (r * r).sum()), abs=1e-4)
    for stem in ("target", "rest"):
        for name in SDR_METRICS:
            assert oracle.stems[stem][name] > mixture.stems[stem][name] + 1, (stem, name)


def test_oracle_estimates_sum_to_the_mix_and_use_a_mask_in_zero_one() -> None:
    target, rest = noise(2, 1.0, seed=11, smooth=4), noise(2, 1.0, seed=12)
    target_hat, rest_hat = oracle_estimates(target, rest, fft_length=256, hop_length=64)
    assert target_hat.shape == rest_hat.shape == target.shape
    assert target_hat.dtype == np.float32
    np.testing.assert_allclose(target_hat + rest_hat, target + rest, atol=1e-6)
    mask = ideal_ratio_mask(np.array([3.0, 0.0, 1j]), np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(mask, [0.75, 0.0, 0.5])


# --------------------------------------------------------------------------------------------
# Silence and short songs


def test_a_silent_reference_gives_nan_and_notes_not_an_error() -> None:
    target = noise(1, 2.0, seed=13)
    silent = np.zeros_like(target)
    scores = score_song("a cappella", target, silent, target, noise(1, 2.0, seed=14), RATE)
    rest = scores.stems["rest"]
    for name in (*MUSEVAL_METRICS, *BSS_METRICS, "si_sdr", "sdr"):
        assert math.isnan(rest[name]), name
        assert math.isnan(scores.stems["target"][name]) == name.startswith(("museval", "bss")), name
    assert rest["museval_nan_frames"] == rest["museval_frames"] == 2
    notes = " | ".join(scores.notes)
    assert "rest reference silent over the whole song: museval_* are NaN" in notes
    assert "channel 0: rest reference silent" in notes
    assert "rest reference is silent: si_sdr and sdr are NaN" in notes


@pytest.mark.slow
def test_silent_frames_are_left_out_of_the_museval_median_and_counted() -> None:
    target, rest = noise(1, 3.0, seed=15), noise(1, 3.0, seed=16)
    rest[:, :RATE] = 0.0
    estimate_target, estimate_rest = add_noise_at(target, 10, seed=17), rest + 0.5 * add_noise_at(rest, 0, 18)
    scores = score_song("intro", target, rest, estimate_target, estimate_rest, RATE, metrics="museval")
    sdr = museval_direct([target, rest], [estimate_target, estimate_rest])[0]
    assert np.isnan(sdr[:, 0]).all() and not np.isnan(sdr[:, 1:]).any()
    for index, stem in enumerate(("target", "rest")):
        assert scores.stems[stem]["museval_sdr"] == np.median(sdr[index, 1:])
        assert scores.stems[stem]["museval_nan_frames"] == 1
        assert scores.stems[stem]["museval_frames"] == 3
    assert scores.notes == (
        "museval: 1 of 3 frames NaN (a silent reference or estimate frame), left out of the median",
    )


@pytest.mark.slow
def test_one_silent_channel_leaves_bss_on_the_other_channel() -> None:
    target, rest = noise(2, 2.0, seed=19), noise(2, 2.0, seed=20)
    rest[1] = 0.0  # hard-panned left
    estimates = [add_noise_at(target, 10, seed=21), add_noise_at(rest, 10, seed=22)]
    scores = score_song("panned", target, rest, *estimates, RATE, metrics=("bss",))
    sdr, sir, sar, _ = bss_direct([target, rest], estimates, channel=0)
    assert scores.stems["target"]["bss_sdr"] == sdr[0]
    assert scores.stems["rest"]["bss_sar"] == sar[1]
    assert scores.notes == (
        "channel 1: rest reference and rest estimate silent, bss_* cannot be computed on it",
        "bss_* are the mean over channels [0] only",
    )


def test_a_museval_refusal_the_checks_miss_is_a_note() -> None:
    # museval calls a source silent when its channels sum to zero, so an exactly anti-phase stereo
    # stem is "silent" to it though not to us; its ValueError must still not escape.
    target = noise(2, 1.0, seed=23)
    rest = noise(1, 1.0, seed=24)
    rest = np.concatenate([rest, -rest])
    scores = score_song("anti-phase", target, rest, target, rest, RATE, metrics=("museval",))
    assert math.isnan(scores.stems["target"]["museval_sdr"])
    assert len(scores.notes) == 1 and scores.notes[0].startswith("museval failed (All the reference sources")


def test_a_silent_estimate_is_noted_and_scored() -> None:
    target, rest = noise(1, 1.0, seed=25), noise(1, 1.0, seed=26)
    scores = score_song("silence", target, rest, target + rest, np.zeros_like(rest), RATE)
    assert scores.stems["rest"]["sdr"] == pytest.approx(0.0)
    assert scores.stems["rest"]["si_sdr"] == -MAX_DB
    assert math.isnan(scores.stems["rest"]["museval_sdr"]) and math.isnan(scores.stems["rest"]["bss_sdr"])
    assert "rest estimate is silent" in scores.notes
    assert "rest estimate silent over the whole song: museval_* are NaN" in scores.notes


def test_a_song_shorter_than_one_museval_frame_gets_nan_and_a_note() -> None:
    target, rest = noise(1, 0.5, seed=27), noise(1, 0.5, seed=28)
    scores = score_song("short", target, rest, target, 0.5 * rest, RATE, metrics=("museval", "sdr"))
    assert math.isnan(scores.stems["target"]["museval_sdr"])
    assert scores.stems["target"]["museval_frames"] == 0
    assert scores.stems["rest"]["sdr"] == pytest.approx(10 * math.log10(4), abs=1e-4)
    assert scores.notes == ("song is 0.50 s, shorter than one 1 s museval frame: museval_* are NaN",)


# --------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"estimate_rest": np.zeros((1, 99), np.float32)}, "same \\(channels, samples\\) shape"),
        ({"estimate_target": np.full((1, 100), np.nan, np.float32)}, "estimate_target contains NaN"),
        ({"target": np.zeros((1, 1, 100), np.float32)}, "target must be shaped"),
        ({"sample_rate": 0}, "sample_rate must be a positive integer"),
        ({"metrics": ("museval", "pesq")}, "unknown metrics \\['pesq'\\]"),
    ],
)
def test_bad_input_is_one_clear_error(change: dict[str, object], message: str) -> None:
    signal = noise(1, 100 / RATE, seed=29)
    arguments = {
        "target": signal,
        "rest": signal,
        "estimate_target": signal,
        "estimate_rest": signal,
        "sample_rate": RATE,
        "metrics": ("sdr",),
        **change,
    }
    with pytest.raises(ValueError, match=message):
        score_song("bad", **arguments)


def test_importing_metrics_does_not_import_the_toolkits() -> None:
    code = "import sys, unmix.core.evaluation.metrics; print('museval' in sys.modules, 'mir_eval' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------------------------
# Over songs


def song(name: str, method: str, sdr: float, sir: float | None = None) -> SongScores:
    values = {"sdr": sdr} if sir is None else {"sdr": sdr, "bss_sir": sir}
    return SongScores(song=name, method=method, stems={"target": values, "rest": {"sdr": -sdr}})


def test_aggregate_takes_median_and_mean_over_songs_leaving_nan_out() -> None:
    scores = [
        song("a", "model", 1.0, 4.0),
        song("b", "model", 2.0, math.nan),
        song("c", "model", 6.0),
        song("d", "model", math.nan, 8.0),
        song("a", "mixture", 0.0),
    ]
    result = aggregate(scores)
    assert list(result) == ["model", "mixture"]
    assert result["model"]["target"]["sdr"] == Summary(median=2.0, mean=3.0, songs=3, missing=1)
    assert result["model"]["rest"]["sdr"] == Summary(median=-2.0, mean=-3.0, songs=3, missing=1)
    # Song c has no bss_sir at all: missing, like b's NaN.
    assert result["model"]["target"]["bss_sir"] == Summary(median=6.0, mean=6.0, songs=2, missing=2)
    assert result["mixture"]["target"]["sdr"] == Summary(median=0.0, mean=0.0, songs=1, missing=0)


def test_aggregate_of_only_nan_is_nan_and_duplicates_are_refused() -> None:
    summary = aggregate([song("a", "model", math.nan)])["model"]["target"]["sdr"]
    assert math.isnan(summary.median) and math.isnan(summary.mean)
    assert (summary.songs, summary.missing) == (0, 1)
    with pytest.raises(ValueError, match="song 'a' is scored twice for method 'model'"):
        aggregate([song("a", "model", 1.0), song("a", "model", 2.0)])


def test_flat_names_each_value_by_stem_and_metric() -> None:
    assert song("a", "model", 1.5).flat() == {"target_sdr": 1.5, "rest_sdr": -1.5}


def test_fraction_of_gap() -> None:
    assert fraction_of_gap(5.0, 0.0, 10.0) == 0.5
    assert fraction_of_gap(-1.0, 1.0, 3.0) == -1.0
    assert math.isnan(fraction_of_gap(5.0, 4.0, 4.0))
    assert math.isnan(fraction_of_gap(5.0, math.nan, 4.0))
    np.testing.assert_allclose(fraction_of_gap(np.array([1.0, 3.0]), 1.0, np.array([3.0, 1.0])), [0.0, np.nan])
