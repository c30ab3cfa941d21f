"""Augmentation plans and their effect on real stems, alone and inside the batch source."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from unmix.core.config.schema import Augmentation, Collection, Configuration
from unmix.core.data.augmentation import AugmentationPlan, Augmenter
from unmix.core.data.batches import BatchSource
from unmix.core.data.tracks import SongAudio
from unmix.core.data.transforms import TrainWindowPredictMask
from unmix.core.data.windows import read_excerpt, read_excerpt_at_speed
from unmix.core.errors import ConfigurationError

RATE = 22050


def stereo_stems(samples: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(samples) / RATE
    target = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    rest = np.stack([np.cos(2 * np.pi * 110 * t), 0.5 * np.cos(2 * np.pi * 220 * t)]).astype(np.float32)
    return target, rest


def plans(augmenter: Augmenter, count: int = 400, songs: int = 5, channels: int = 2) -> list[AugmentationPlan]:
    lengths = [RATE * 10 + 1000 * song for song in range(songs)]
    return [
        augmenter.plan(np.random.default_rng([7, item]), item % songs, lengths, 25_728, channels)
        for item in range(count)
    ]


def test_off_by_default_and_disabled_is_identity() -> None:
    assert Augmenter.from_configuration(Configuration()).enabled is False
    augmenter = Augmenter(enabled=False)
    assert all(plan.is_identity for plan in plans(augmenter))
    target, rest = stereo_stems()
    new_target, new_rest = AugmentationPlan().apply(target, rest)
    np.testing.assert_array_equal(new_target, target)
    np.testing.assert_array_equal(new_rest, rest)


def test_gains_are_drawn_within_the_configured_range() -> None:
    augmenter = Augmenter(enabled=True, gain_min=0.5, gain_max=0.75, remix_probability=0.0)
    drawn = plans(augmenter)
    gains = np.array([(plan.target_gain, plan.rest_gain) for plan in drawn])
    assert gains.min() >= 0.5 and gains.max() <= 0.75
    assert gains.max() - gains.min() > 0.2  # actually spread over the range
    assert not np.allclose(gains[:, 0], gains[:, 1])  # one gain per stem
    target, rest = stereo_stems()
    plan = drawn[0]
    new_target, new_rest = plan.apply(target, rest)
    expected = target[::-1] if plan.swap_target else target
    np.testing.assert_allclose(new_target, expected * plan.target_gain, rtol=1e-6)
    assert new_rest.dtype == np.float32


def test_channel_swap_swaps_left_and_right() -> None:
    target, rest = stereo_stems()
    new_target, new_rest = AugmentationPlan(swap_target=True).apply(target, rest)
    np.testing.assert_array_equal(new_target[0], target[1])
    np.testing.assert_array_equal(new_target[1], target[0])
    np.testing.assert_array_equal(new_rest, rest)
    swaps = [(plan.swap_target, plan.swap_rest) for plan in plans(Augmenter(enabled=True))]
    share = np.mean(swaps, axis=0)
    assert np.all((share > 0.35) & (share < 0.65))


def test_mono_and_disabled_swaps_never_swap() -> None:
    assert not any(plan.swap_target or plan.swap_rest for plan in plans(Augmenter(enabled=True), channels=1))
    assert not any(plan.swap_target for plan in plans(Augmenter(enabled=True, channel_swap=False)))


def test_remix_pairs_a_song_with_another_song_at_a_valid_offset() -> None:
    augmenter = Augmenter(enabled=True, remix_probability=0.5)
    songs = 5
    lengths = [RATE * 10 + 1000 * song for song in range(songs)]
    drawn = plans(augmenter, songs=songs)
    remixed = [(item % songs, plan) for item, plan in enumerate(drawn) if plan.remix_song is not None]
    assert 0.35 < len(remixed) / len(drawn) < 0.65
    assert all(plan.remix_song != song for song, plan in remixed)
    assert {plan.remix_song for _, plan in remixed} == set(range(songs))
    assert all(0 <= plan.remix_offset <= lengths[plan.remix_song] - 25_728 for _, plan in remixed)
    assert not any(plan.remix_song is not None for plan in plans(Augmenter(enabled=True, remix_probability=0.0)))
    # A single song has nobody to be remixed with.
    assert all(plan.remix_song is None for plan in plans(Augmenter(enabled=True, remix_probability=1.0), songs=1))


def test_plans_are_reproducible_for_a_seed() -> None:
    augmenter = Augmenter(enabled=True)
    assert plans(augmenter) == plans(augmenter)


def test_bad_ranges_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="gain_min"):
        Augmenter(gain_min=2.0, gain_max=1.0)
    with pytest.raises(ConfigurationError, match="remix_probability"):
        Augmenter(remix_probability=1.5)


def constant_song(name: str, target_level: float, rest_level: float, samples: int = RATE * 4) -> SongAudio:
    """Constant stems (DC): a window's magnitude at bin 0 shows each stem's level exactly."""
    return SongAudio(
        name=name,
        collection="test",
        sample_rate=RATE,
        target=np.full((1, samples), target_level, np.float32),
        rest=np.full((1, samples), rest_level, np.float32),
    )


def test_batch_source_applies_remix_and_gain_before_the_stft() -> None:
    """Song A has target 1 and rest 2; song B target 3 and rest 4. Remixing A's target with B's rest
    makes windows whose target is 1/5 of the mix at DC (B's: 3/5), which neither song has on its own."""
    songs = [constant_song("a", 1.0, 2.0), constant_song("b", 3.0, 4.0)]
    settings = Configuration(
        collection=Collection(sample_rate=RATE),
        augmentation=Augmentation(enabled=True, gain_min=1.0, gain_max=1.0, channel_swap=False,
                                  remix_probability=1.0),
    )
    transform = TrainWindowPredictMask(normalizer="")
    with BatchSource(songs, transform, settings, workers=0, shuffle_windows=False, batch_size=1) as source:
        items = source.epoch_items(0)
        inputs, targets = zip(*(source.batch(0, index) for index in range(len(source))), strict=True)
    # The centre frames of windows 1 to 3 read only samples inside the 4 s songs: exact DC ratios.
    checked = 0
    for (song, window), model_input, target in zip(items, inputs, targets, strict=True):
        if 1 <= window <= 3:
            ratio = target[0, 0, 32, 0] / model_input[0, 0, 32, 0]
            assert ratio == pytest.approx(1 / 5 if song == 0 else 3 / 5, rel=1e-4)
            checked += 1
    assert checked == 6
    with BatchSource(songs, transform, settings, workers=0, augment=False, batch_size=1) as plain:
        model_input, target = plain.batch(0, 0)
        song, window = plain.epoch_items(0)[0]
        clean = plain.make_item(int(song), int(window))
        np.testing.assert_array_equal(model_input[0], clean[0])


def test_gain_range_shows_in_the_batches() -> None:
    songs = [constant_song("a", 1.0, 1.0), constant_song("b", 1.0, 1.0)]
    settings = Configuration(
        collection=Collection(sample_rate=RATE),
        augmentation=Augmentation(enabled=True, gain_min=0.5, gain_max=1.5, remix_probability=0.0),
    )
    transform = TrainWindowPredictMask(normalizer="")
    with BatchSource(songs, transform, settings, workers=0, batch_size=1, shuffle_windows=False) as source:
        items = source.epoch_items(0)
        ratios = [
            targets[0, 0, 32, 0] / inputs[0, 0, 32, 0]
            for (_, window), (inputs, targets) in zip(items, source.epoch(0), strict=True)
            if 1 <= window <= 3
        ]
    ratios = np.array(ratios)
    # target / mix = g_t / (g_t + g_r) with both gains in [0.5, 1.5]: between 0.25 and 0.75.
    assert ratios.min() >= 0.25 - 1e-4 and ratios.max() <= 0.75 + 1e-4
    assert ratios.max() - ratios.min() > 0.2


def test_pitch_speeds_are_drawn_per_stem_within_the_semitone_range_and_leave_other_draws_alone() -> None:
    shifted = plans(Augmenter(enabled=True, pitch_semitones=2.0))
    speeds = np.array([(plan.target_speed, plan.rest_speed) for plan in shifted])
    assert speeds.min() >= 2 ** (-2 / 12) and speeds.max() <= 2 ** (2 / 12)
    assert speeds.max() - speeds.min() > 0.15
    assert not np.allclose(speeds[:, 0], speeds[:, 1])
    plain = plans(Augmenter(enabled=True))
    assert all(plan.target_speed == plan.rest_speed == 1.0 for plan in plain)
    # The speeds are drawn last: gains, swaps and remixes are the ones a run without pitch gets.
    assert [attrs.evolve(plan, target_speed=1.0, rest_speed=1.0) for plan in shifted] == plain
    with pytest.raises(ConfigurationError, match="pitch_semitones"):
        Augmenter(pitch_semitones=13)


def peak_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * RATE / samples.size)


def test_reading_at_a_speed_moves_the_pitch_by_that_factor() -> None:
    target, _ = stereo_stems(RATE)
    up_three = 2 ** (3 / 12)
    faster = read_excerpt_at_speed(target, 100, 8192, up_three)
    assert faster.shape == (2, 8192) and faster.dtype == np.float32
    assert peak_frequency(faster[0]) == pytest.approx(440 * up_three, abs=3)
    assert peak_frequency(faster[1]) == pytest.approx(660 * up_three, abs=3)
    slower = read_excerpt_at_speed(target, 0, 8192, 1 / up_three)
    assert peak_frequency(slower[0]) == pytest.approx(440 / up_three, abs=3)
    np.testing.assert_array_equal(read_excerpt_at_speed(target, 5, 300, 1.0), read_excerpt(target, 5, 305))
    past_the_end = read_excerpt_at_speed(target, RATE - 100, 400, 1.5)
    assert np.all(past_the_end[:, 70:] == 0) and np.any(past_the_end[:, :60] != 0)


def test_batch_source_plays_the_stems_in_other_registers() -> None:
    """A 440 Hz target read with up to 12 semitones of pitch augmentation: the windows' target
    peaks spread over the octave either side, which the unaugmented windows never leave."""
    samples = RATE * 4
    tone = np.sin(2 * np.pi * 440 * np.arange(samples) / RATE).astype(np.float32)[None]
    songs = [SongAudio(name=name, collection="test", sample_rate=RATE, target=tone, rest=np.zeros_like(tone))
             for name in ("a", "b")]
    settings = Configuration(
        collection=Collection(sample_rate=RATE),
        augmentation=Augmentation(enabled=True, gain_min=1.0, gain_max=1.0, remix_probability=0.0,
                                  pitch_semitones=12.0),
    )
    transform = TrainWindowPredictMask(normalizer="")
    bin_hz = RATE / settings.spectrogram_generation.fft_length

    def peaks(source: BatchSource) -> np.ndarray:
        """The loudest frequency of each window's centre frame; windows past the songs' end are silent."""
        centres = [inputs[0, :, 32, 0] for inputs, _ in source.epoch(0)]
        return np.array([np.argmax(centre) * bin_hz for centre in centres if centre.max() > 0])

    with BatchSource(songs, transform, settings, workers=0, batch_size=1) as source:
        shifted = peaks(source)
    with BatchSource(songs, transform, settings, workers=0, batch_size=1, augment=False) as plain:
        unshifted = peaks(plain)
    assert np.all(np.abs(unshifted - 440) <= bin_hz)
    assert shifted.min() >= 220 - bin_hz and shifted.max() <= 880 + bin_hz
    assert shifted.max() - shifted.min() > 200
