"""Loud songs through the real `unmix predict`: the written stems still add up to the input.

The gain-mask test model with a mask of 0.8 makes the target 0.8 times the song and the rest 0.2
times it, so a song peaking at 1.5 gives a target peaking at 1.2, above full scale, and a rest
well within it; a song peaking at 0.999 gives stems that fit. The rule under test:
- 32-bit float wav keeps every sample, so target + rest equals the input exactly;
- `--peak normalize` scales both stems of a song by one gain (the loudest stem to -0.1 dBFS,
  only when a stem exceeds full scale), so target + rest equals the input times that gain;
- `--peak clip` into 16-bit clips, and warns naming the song and how many samples it clipped.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests.helpers import run_unmix
from tests.training_fixtures import set_gain_checkpoint

# Trains a run and runs the real `unmix` command on it; the fast subset skips this module.
pytestmark = pytest.mark.slow

RATE = 8000
MASK = 0.8
NORMALIZED_PEAK = 10 ** (-0.1 / 20)
# Each 16-bit stem is off by at most one step (rounding, and libsndfile's 32767-versus-32768
# scaling near full scale), so their sum by at most two.
SUM_OF_16_BIT_STEMS = 2 / 32768
PEAKS = {"loud": 1.5, "near": 0.999}


def loud_song(peak: float, seconds: float = 1.3) -> np.ndarray:
    """Stereo tones and noise scaled so that the largest sample is exactly `peak`."""
    rng = np.random.default_rng(5)
    time_axis = np.arange(int(seconds * RATE)) / RATE
    audio = np.stack([np.sin(2 * np.pi * 220 * time_axis) + 0.5 * np.sin(2 * np.pi * 1100 * time_axis),
                      np.sin(2 * np.pi * 330 * time_axis) + rng.normal(0, 0.1, time_axis.size)])
    return (audio * (peak / np.abs(audio).max())).astype(np.float32)


@pytest.fixture(scope="module")
def predictions(tmp_path_factory, gain_run, gain_environment):
    """Each song's input and its stems written three ways: float/clip, 16-bit/normalize, 16-bit/clip."""
    folder = tmp_path_factory.mktemp("loud")
    run = gain_run
    set_gain_checkpoint(run, MASK)
    environment = gain_environment
    songs = folder / "songs"
    songs.mkdir()
    for name, peak in PEAKS.items():
        soundfile.write(songs / f"{name}.wav", loud_song(peak).T, RATE, subtype="FLOAT")
    modes = {"float": ["--bit-depth", "float", "--peak", "clip"], "normalize": ["--bit-depth", "16", "--peak",
             "normalize"], "clip": ["--bit-depth", "16", "--peak", "clip"]}
    stems, stderr = {}, {}
    for mode, arguments in modes.items():
        result = run_unmix("predict", "--run-folder", str(run), "--songs", str(songs), "--output",
                           str(folder / mode), *arguments, env=environment)
        assert result.returncode == 0, result.stderr
        stderr[mode] = result.stderr
        for name in PEAKS:
            stems[mode, name] = (read(folder / mode / f"{name}_vocals.wav"), read(folder / mode / f"{name}_rest.wav"))
    inputs = {name: read(songs / f"{name}.wav") for name in PEAKS}
    return inputs, stems, stderr


def read(path):
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    assert rate == RATE
    return samples.T


@pytest.mark.parametrize("name", list(PEAKS))
def test_float_wav_keeps_peaks_so_the_stems_add_up_exactly(predictions, name):
    inputs, stems, stderr = predictions
    target, rest = stems["float", name]
    np.testing.assert_allclose(target + rest, inputs[name], atol=1e-6)
    assert np.abs(target).max() == pytest.approx(MASK * PEAKS[name], rel=1e-3)
    assert f"song '{name}'" not in stderr["float"]


@pytest.mark.parametrize("name", list(PEAKS))
def test_normalize_gives_both_stems_one_gain_so_they_add_up_to_the_scaled_input(predictions, name):
    inputs, stems, _ = predictions
    float_target, float_rest = stems["float", name]
    loudest = max(np.abs(float_target).max(), np.abs(float_rest).max())
    gain = NORMALIZED_PEAK / loudest if loudest > 1 else 1.0
    assert (gain < 1) == (name == "loud")
    target, rest = stems["normalize", name]
    np.testing.assert_allclose(target, gain * float_target, atol=SUM_OF_16_BIT_STEMS / 2)
    np.testing.assert_allclose(rest, gain * float_rest, atol=SUM_OF_16_BIT_STEMS / 2)
    np.testing.assert_allclose(target + rest, gain * inputs[name], atol=SUM_OF_16_BIT_STEMS)


def test_clip_into_16_bit_warns_naming_the_song_and_how_much_it_clipped(predictions):
    inputs, stems, stderr = predictions
    float_target, float_rest = stems["float", "loud"]
    clipped = int(np.count_nonzero(np.abs(float_target) > 1) + np.count_nonzero(np.abs(float_rest) > 1))
    assert clipped > 0
    warnings = [line for line in stderr["clip"].splitlines() if line.startswith("unmix: warning: song 'loud'")]
    assert len(warnings) == 1, stderr["clip"]
    assert f"{clipped} samples" in warnings[0] and "--bit-depth float" in warnings[0]
    assert "--peak normalize" in warnings[0]
    assert "song 'near'" not in stderr["clip"]


def test_clip_into_16_bit_keeps_a_song_within_full_scale_adding_up(predictions):
    inputs, stems, _ = predictions
    target, rest = stems["clip", "near"]
    np.testing.assert_allclose(target + rest, inputs["near"], atol=SUM_OF_16_BIT_STEMS)
