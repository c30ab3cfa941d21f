"""The built-in transforms: shapes, normalisation, mask targets and untransform, on real windows."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.core.config.schema import Configuration, Transformation, TransformationOptions
from unmix.core.data.transforms import (
    MaskIbmTransform,
    MaskTransform,
    TrainWindowPredictMask,
    TrainWindowPredictMaskHann,
    TrainWindowPredictMaskPhaseSensitive,
    WindowTransform,
    create_transform,
)
from unmix.core.data.windows import window_spectrogram
from unmix.core.errors import ConfigurationError
from unmix.core.plugins import plugin_manager

BINS = 769
SIZE = 64


def stems(channels: int = 1, seconds: float = 3.0, rate: int = 22050) -> tuple[np.ndarray, np.ndarray]:
    """A sine target over a noise rest, so target and rest dominate different bins."""
    t = np.arange(int(seconds * rate)) / rate
    target = np.stack([0.5 * np.sin(2 * np.pi * (440 + 110 * c) * t) for c in range(channels)]).astype(np.float32)
    rest = 0.1 * np.random.default_rng(1).standard_normal((channels, t.size)).astype(np.float32)
    return target, rest


def windows(channels: int = 1, first_frame: int = 40) -> tuple[np.ndarray, np.ndarray]:
    target, rest = stems(channels)
    mix_window = window_spectrogram(target + rest, first_frame, SIZE, 1536)
    target_window = window_spectrogram(target, first_frame, SIZE, 1536)
    return mix_window, target_window


ALL = [TrainWindowPredictMask, TrainWindowPredictMaskHann, TrainWindowPredictMaskPhaseSensitive, WindowTransform,
       MaskTransform, MaskIbmTransform]


def test_the_built_in_transforms_are_registered_as_a_plugin() -> None:
    registry = plugin_manager().registry("transforms")
    for transform_class in ALL:
        assert registry.get(transform_class.name) is transform_class
    assert {r.plugin for r in registry if r.name in {c.name for c in ALL}} == {"core"}


def test_create_transform_reads_the_configuration() -> None:
    configuration = Configuration(
        transformation=Transformation(
            name="train_window_predict_mask_hann",
            options=TransformationOptions(size=64, step=16, normalizer="norm_min_max"),
        )
    )
    transform = create_transform(configuration)
    assert isinstance(transform, TrainWindowPredictMaskHann)
    assert (transform.size, transform.step, transform.normalizer) == (64, 16, "norm_min_max")


@pytest.mark.parametrize("transform_class", [TrainWindowPredictMask, TrainWindowPredictMaskHann, WindowTransform])
@pytest.mark.parametrize("channels", [1, 2])
def test_whole_window_transforms_give_channels_last_arrays(transform_class, channels: int) -> None:
    transform = transform_class(size=SIZE, step=32)
    mix_window, target_window = windows(channels)
    model_input, target = transform.training_pair(mix_window, target_window)
    assert model_input.shape == target.shape == (BINS, SIZE, channels) == transform.input_shape(BINS, channels)
    assert model_input.dtype == target.dtype == np.float32
    assert model_input.flags.c_contiguous
    np.testing.assert_array_equal(model_input, transform.prepare_input(mix_window))
    # Channel c of the model array is channel c of the window.
    np.testing.assert_allclose(model_input[:, :, -1], np.abs(mix_window[-1]) / np.abs(mix_window).max(), rtol=1e-6)


def test_norm_max_divides_input_and_target_by_the_input_maximum() -> None:
    mix_window, target_window = windows(2)
    model_input, target = TrainWindowPredictMask(normalizer="norm_max").training_pair(mix_window, target_window)
    maximum = np.abs(mix_window).max()
    assert model_input.max() == pytest.approx(1.0)
    np.testing.assert_allclose(target, np.moveaxis(np.abs(target_window), 0, -1) / maximum, rtol=1e-6)


def test_norm_min_max_maps_the_target_with_the_input_minimum_and_maximum() -> None:
    mix_window, target_window = windows(1)
    model_input, target = TrainWindowPredictMask(normalizer="norm_min_max").training_pair(mix_window, target_window)
    mix_magnitude = np.abs(mix_window)
    low, high = mix_magnitude.min(), mix_magnitude.max()
    assert model_input.min() == pytest.approx(0.0, abs=1e-7)
    assert model_input.max() == pytest.approx(1.0)
    expected = (np.abs(target_window) - low) / (high - low)
    np.testing.assert_allclose(target, np.moveaxis(expected, 0, -1), rtol=1e-5, atol=1e-7)
    # The seed's bug was a target computed from the input: here they differ.
    assert not np.allclose(target, model_input)


def test_no_normalizer_keeps_magnitudes() -> None:
    mix_window, target_window = windows(1)
    model_input, target = TrainWindowPredictMask(normalizer="").training_pair(mix_window, target_window)
    np.testing.assert_array_equal(model_input[..., 0], np.abs(mix_window[0]))
    np.testing.assert_array_equal(target[..., 0], np.abs(target_window[0]))


def test_a_silent_window_is_not_divided_by_zero() -> None:
    silent = np.zeros((1, BINS, SIZE), dtype=np.complex64)
    for normalizer in ("norm_max", "norm_min_max"):
        model_input, target = TrainWindowPredictMask(normalizer=normalizer).training_pair(silent, silent)
        assert np.isfinite(model_input).all() and np.isfinite(target).all()
        assert not model_input.any()


@pytest.mark.parametrize("transform_class", [TrainWindowPredictMask, TrainWindowPredictMaskHann, MaskTransform])
def test_untransform_of_mask_one_is_the_mix_and_of_mask_zero_silence(transform_class) -> None:
    transform = transform_class(size=SIZE, step=16)
    mix_window, _ = windows(2)
    shape = transform.target_shape(BINS, 2)
    columns = transform.output_columns
    estimate = transform.untransform(mix_window, np.ones(shape, np.float32))
    assert estimate.dtype == np.complex64
    np.testing.assert_array_equal(estimate, mix_window[..., columns])
    assert not transform.untransform(mix_window, np.zeros(shape, np.float32)).any()
    # Masks are clipped to [0, 1].
    np.testing.assert_array_equal(transform.untransform(mix_window, np.full(shape, 3.0, np.float32)), estimate)
    assert not transform.untransform(mix_window, np.full(shape, -2.0, np.float32)).any()


def test_untransform_keeps_the_mix_phase_and_scales_the_magnitude() -> None:
    mix_window, _ = windows(1)
    half = np.full((BINS, SIZE, 1), 0.5, np.float32)
    estimate = TrainWindowPredictMask().untransform(mix_window, half)
    np.testing.assert_allclose(np.abs(estimate), 0.5 * np.abs(mix_window), rtol=1e-6)
    loud = np.abs(mix_window) > 1e-3
    np.testing.assert_allclose(np.angle(estimate)[loud], np.angle(mix_window)[loud], atol=1e-5)


def test_window_transform_round_trips_the_target_magnitude_with_the_mix_phase() -> None:
    """Predicting exactly the training target gives back |target| with the mix's phase."""
    mix_window, target_window = windows(2)
    for normalizer in ("norm_max", "norm_min_max", ""):
        transform = WindowTransform(normalizer=normalizer)
        _, target = transform.training_pair(mix_window, target_window)
        estimate = transform.untransform(mix_window, target)
        np.testing.assert_allclose(np.abs(estimate), np.abs(target_window), rtol=1e-4, atol=1e-4)
        loud = np.abs(mix_window) > 1e-3
        np.testing.assert_allclose(np.angle(estimate)[loud], np.angle(mix_window)[loud], atol=1e-4)
    negative = np.full((BINS, SIZE, 2), -1.0, np.float32)
    assert not WindowTransform().untransform(mix_window, negative).any()


def test_ratio_mask_target_is_in_zero_one_and_correct() -> None:
    mix_window, target_window = windows(1)
    transform = MaskTransform(size=25, step=1, normalizer="")
    model_input, target = transform.training_pair(mix_window[..., :25], target_window[..., :25])
    assert model_input.shape == (BINS, 25, 1)
    assert target.shape == (BINS, 1, 1) == transform.target_shape(BINS, 1)
    assert 0.0 <= target.min() and target.max() <= 1.0
    centre = 12
    ratio = np.abs(target_window[0, :, centre]) / np.abs(mix_window[0, :, centre])
    np.testing.assert_allclose(target[:, 0, 0], np.clip(ratio, 0, 1), rtol=1e-6)
    # Not the seed's constant 1: the sine's bins are near 1, the noise bins far below.
    assert target.max() > 0.9 and target.min() < 0.1


def test_phase_sensitive_target_is_the_part_of_the_target_along_the_mix_phase() -> None:
    mix_window, target_window = windows(1)
    transform = TrainWindowPredictMaskPhaseSensitive(normalizer="")
    model_input, target = transform.training_pair(mix_window, target_window)
    _, magnitude_target = TrainWindowPredictMask(normalizer="").training_pair(mix_window, target_window)
    assert target.shape == model_input.shape == (BINS, SIZE, 1)
    phase_difference = np.angle(target_window) - np.angle(mix_window)
    expected = np.clip(np.abs(target_window) * np.cos(phase_difference), 0.0, np.abs(mix_window))
    np.testing.assert_allclose(target[..., 0], expected[0], rtol=1e-5, atol=1e-5)
    # Never above |target| nor |mix|, and below |target| where the noise turns the mix's phase away.
    assert np.all(target <= magnitude_target + 1e-5) and np.all(target <= model_input + 1e-5)
    assert np.mean(target < 0.9 * magnitude_target) > 0.1
    # Where the target is in phase with the mix the two targets agree; in anti-phase it is zero.
    _, in_phase = transform.training_pair(mix_window, 0.5 * mix_window)
    np.testing.assert_allclose(in_phase, 0.5 * model_input, rtol=1e-5, atol=1e-7)
    _, anti_phase = transform.training_pair(mix_window, -0.5 * mix_window)
    assert not anti_phase.any()


def test_ideal_binary_mask_marks_where_the_target_is_louder_than_the_rest() -> None:
    target, rest = stems(1)
    mix_window = window_spectrogram(target + rest, 40, 25, 1536)
    target_window = window_spectrogram(target, 40, 25, 1536)
    rest_window = window_spectrogram(rest, 40, 25, 1536)
    transform = MaskIbmTransform(size=25, step=3)
    _, mask = transform.training_pair(mix_window, target_window)
    assert mask.shape == (BINS, 3, 1)
    assert set(np.unique(mask)) == {0.0, 1.0}
    expected = np.abs(target_window[0, :, 11:14]) >= np.abs(rest_window[0, :, 11:14])
    # The rest is computed as mix - target; rounding may flip bins where the two are equal.
    assert (mask[..., 0] == expected).mean() > 0.999
    sine_bin = round(440 / (22050 / 1536))
    assert mask[sine_bin].all()


def test_mask_transforms_predict_the_centre_step_columns() -> None:
    transform = MaskTransform(size=25, step=5)
    assert transform.output_columns == slice(10, 15)
    np.testing.assert_array_equal(transform.synthesis_weights(), np.ones(5, np.float32))
    with pytest.raises(ConfigurationError, match="step"):
        MaskTransform(size=8, step=16)


def test_batched_windows_transform_in_one_call() -> None:
    first, target_first = windows(1, 10)
    second, target_second = windows(1, 90)
    batch = np.stack([first, second])
    transform = TrainWindowPredictMask()
    model_inputs = transform.prepare_input(batch)
    assert model_inputs.shape == (2, BINS, SIZE, 1)
    np.testing.assert_array_equal(model_inputs[1], transform.prepare_input(second))
    inputs, targets = transform.training_pair(batch, np.stack([target_first, target_second]))
    np.testing.assert_array_equal(targets[0], transform.training_pair(first, target_first)[1])
    estimates = transform.untransform(batch, np.ones_like(inputs))
    np.testing.assert_array_equal(estimates, batch)


@pytest.mark.parametrize(
    ("transform", "step"),
    [(TrainWindowPredictMask(size=64, step=64), 64), (TrainWindowPredictMask(size=64, step=16), 16),
     (TrainWindowPredictMaskHann(size=64, step=16), 16), (TrainWindowPredictMaskHann(size=64, step=32), 32),
     (MaskTransform(size=25, step=1), 1)],
)
def test_synthesis_weights_overlap_add_to_one(transform, step: int) -> None:
    weights = transform.synthesis_weights()
    width = transform.output_width
    total = np.zeros(width * 8)
    for start in range(0, width * 7, step):
        total[start:start + width] += weights
    # Away from the first and last window every frame is covered by width / step windows.
    interior = total[width:width * 6]
    np.testing.assert_allclose(interior, 1.0, atol=1e-6)


def test_hann_needs_a_step_dividing_the_size_at_least_twice() -> None:
    with pytest.raises(ConfigurationError, match="step"):
        TrainWindowPredictMaskHann(size=64, step=64)
    with pytest.raises(ConfigurationError, match="step"):
        TrainWindowPredictMaskHann(size=64, step=24)


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="normalizer"):
        TrainWindowPredictMask(normalizer="zmuv")
    with pytest.raises(ConfigurationError, match="size"):
        TrainWindowPredictMask(size=0)
    with pytest.raises(ConfigurationError, match="step"):
        TrainWindowPredictMask(size=16, step=32).synthesis_weights()
