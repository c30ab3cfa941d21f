"""Waveform models in core, without a framework: the chunks training sees and the chunked engine.

The fake model below is deterministic per chunk but depends on the whole chunk (each sample is
scaled by the chunk's mean level), so a chunk cut at another place, or one chunk missing from a
cross-fade, changes the result: streaming a song in segments must still give the whole song's
samples, and separating must give every song its own length, channels and rate back.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import soundfile

from unmix.core.config.schema import (
    Augmentation,
    Collection,
    Configuration,
    Prediction,
    Training,
    Transformation,
    TransformationOptions,
)
from unmix.core.data.batches import BatchSource
from unmix.core.data.tracks import SongAudio
from unmix.core.data.transforms import WaveformTransform, crossfade_weights
from unmix.core.data.windows import chunk_count
from unmix.core.errors import ConfigurationError
from unmix.core.interfaces import ExportOptions
from unmix.core.separation.engine import SegmentPlan, separate_segment
from unmix.core.separation.prediction import Engine, exporter_for, separate_file

RATE = 8000
SIZE = 1000
STEP = 750


class ChunkLevelModel:
    """Each chunk's samples times (0.5 + its mean absolute level): a function of the whole chunk."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        self.calls.append(inputs.shape)
        level = np.mean(np.abs(inputs), axis=(1, 2), keepdims=True)
        return (inputs * (0.5 + level)).astype(np.float32)


def configuration(stereo: bool = False, size: int = SIZE, step: int = STEP, chunk_seconds: float = 1.0,
                  batch_size: int = 3, augment: bool = False) -> Configuration:
    return Configuration(
        collection=Collection(sample_rate=RATE, stereo=stereo),
        transformation=Transformation(name="waveform", options=TransformationOptions(size=size, step=step)),
        training=Training(batch_size=batch_size),
        prediction=Prediction(chunk_seconds=chunk_seconds, batch_size=batch_size),
        augmentation=Augmentation(enabled=augment),
    )


def engine(stereo: bool = False, **options) -> Engine:
    settings = configuration(stereo=stereo, **options)
    transform = WaveformTransform(size=settings.transformation.options.size, step=settings.transformation.options.step)
    return Engine(model=ChunkLevelModel(), transform=transform, settings=settings,
                  batch_size=settings.prediction.batch_size)


def song(samples: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    time_axis = np.arange(samples) / RATE
    swell = 0.5 + 0.4 * np.sin(2 * np.pi * 0.7 * time_axis)
    return np.stack([swell * (0.3 * np.sin(2 * np.pi * (330 + 55 * c) * time_axis) + rng.normal(0, 0.05, samples))
                     for c in range(channels)]).astype(np.float32)


# ---- the cross-fade --------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "step"), [(1000, 750), (1000, 500), (9, 5), (8, 6), (16, 16), (2, 1)])
def test_crossfade_weights_of_overlapping_chunks_sum_to_one(size, step):
    weights = crossfade_weights(size, step).astype(np.float64)
    assert weights.shape == (size,) and weights.dtype == np.float64 and np.all(weights > 0)
    chunks = 6
    total = np.zeros(step * (chunks - 1) + size)
    for index in range(chunks):
        total[index * step:index * step + size] += weights
    np.testing.assert_allclose(total[size:step * (chunks - 1)], 1.0, atol=1e-6)


def test_dense_chunks_fade_over_half_a_chunk_and_are_divided_by_their_weights():
    weights = crossfade_weights(12, 3)
    assert np.all(weights > 0) and weights[5] < 1 and weights[6] < 1, "fades of size // 2 meet in the middle"


@pytest.mark.parametrize("step", [0, 1001])
def test_a_step_outside_one_to_size_is_one_line(step):
    with pytest.raises(ConfigurationError, match="transformation.options.step") as error:
        crossfade_weights(SIZE, step) if step == 0 else WaveformTransform(size=SIZE, step=step)
    assert "\n" not in str(error.value)


def test_the_transform_passes_samples_through_and_ignores_the_normalizer():
    transform = WaveformTransform(size=4, step=2, normalizer="norm_max")
    mix, target = song(4, 2), song(4, 2, seed=1) * 3
    model_input, model_target = transform.training_pair(mix, target)
    assert transform.input_shape(129, 2) == transform.target_shape(129, 2) == (2, 4)
    np.testing.assert_array_equal(model_input, mix)
    np.testing.assert_array_equal(model_target, target)
    np.testing.assert_array_equal(transform.untransform(mix, target), target)


# ---- the engine -------------------------------------------------------------------------------

@pytest.mark.parametrize("samples", [0, 3, SIZE, SIZE + 1, 5 * STEP + 17])
@pytest.mark.parametrize(("song_channels", "stereo_model"), [(1, False), (2, True), (2, False), (1, True)])
def test_a_scaling_model_scales_every_sample_to_the_edges(samples, song_channels, stereo_model):
    """A model that halves its chunk must halve the song: the weights are normalised everywhere."""
    separation = engine(stereo=stereo_model)
    separation.model.predict = lambda inputs: inputs * np.float32(0.5)
    audio = song(samples, song_channels)
    target = separation.separate_samples(audio)
    assert target.shape == audio.shape and target.dtype == np.float32
    np.testing.assert_allclose(target, 0.5 * audio, atol=1e-6)


def test_every_chunk_the_song_has_goes_through_the_model_in_batches():
    separation = engine(batch_size=3)
    audio = song(10 * STEP + 5)
    separation.separate_samples(audio)
    chunks = chunk_count(audio.shape[1], SIZE, STEP)
    assert [shape[0] for shape in separation.model.calls] == [3] * (chunks // 3) + ([chunks % 3] if chunks % 3 else [])
    assert all(shape[1:] == (1, SIZE) for shape in separation.model.calls)


def test_segments_on_the_grid_give_the_whole_songs_samples():
    separation = engine()
    settings = separation.separation_settings
    audio = song(9 * SIZE + 123)
    whole = separation.separate_samples(audio)
    plan = SegmentPlan.for_transform(separation.transform, settings, 2 * SIZE)
    assert plan.margin % STEP == 0 and plan.margin >= SIZE and plan.core % STEP == 0
    total = audio.shape[1]
    for core_start in range(0, total, plan.core):
        start, stop = core_start - plan.margin, core_start + plan.core + plan.margin
        segment = np.zeros((1, stop - start), np.float32)
        inside = slice(max(start, 0), min(stop, total))
        segment[:, inside.start - start:inside.stop - start] = audio[:, inside]
        known = total if stop >= total else None
        target = separate_segment(segment, start, known, separation.transform, separation.predict, settings)
        core_stop = min(core_start + plan.core, total)
        np.testing.assert_allclose(target[:, plan.margin:plan.margin + core_stop - core_start],
                                   whole[:, core_start:core_stop], atol=1e-5)


@pytest.mark.parametrize(("input_rate", "channels", "stereo_model"), [(RATE, 1, False), (RATE, 2, True),
                                                                      (11025, 2, False)])
def test_streaming_a_file_equals_the_whole_song_and_the_stems_add_up(tmp_path, input_rate, channels, stereo_model):
    separation = engine(stereo=stereo_model, chunk_seconds=1.0)
    audio = song(int(4.3 * input_rate), channels)
    soundfile.write(tmp_path / "song.wav", audio.T, input_rate, subtype="FLOAT")
    result = separate_file(separation, tmp_path / "song.wav", tmp_path / "out", exporter_for("wav"),
                           ExportOptions(bit_depth="float"), "{song}_{stem}.{ext}", progress=False)
    target, rate = soundfile.read(result.files[separation.target], dtype="float32", always_2d=True)
    rest, _ = soundfile.read(result.files["rest"], dtype="float32", always_2d=True)
    assert rate == input_rate and target.T.shape == rest.T.shape == audio.shape
    np.testing.assert_allclose(target.T + rest.T, audio, atol=1e-6)
    if input_rate == RATE:
        assert audio.shape[1] > 4 * separation.settings.prediction.chunk_seconds * RATE - 1, "several segments"
        np.testing.assert_allclose(target.T, separation.separate_samples(audio), atol=1e-5)


# ---- training chunks --------------------------------------------------------------------------

def songs_in_memory(channels: int = 1) -> list[SongAudio]:
    return [SongAudio(f"song{index}", "test", RATE, song(samples, channels, seed=index),
                      song(samples, channels, seed=10 + index) * 0.5)
            for index, samples in enumerate([5 * SIZE, 3 * SIZE + 200, 7 * SIZE])]


def test_training_chunks_are_sample_chunks_of_mix_and_target():
    songs = songs_in_memory(channels=2)
    settings = configuration(stereo=True, batch_size=4)
    with BatchSource(songs, WaveformTransform(size=SIZE, step=STEP), settings, workers=0) as source:
        assert source.item_count == sum(chunk_count(one.frames, SIZE, STEP) for one in songs)
        assert source.batch_shapes == ((4, 2, SIZE), (4, 2, SIZE))
        inputs, targets = next(iter(source))
    assert inputs.dtype == targets.dtype == np.float32 and inputs.shape == targets.shape == (4, 2, SIZE)
    for mix, target in zip(inputs, targets, strict=True):
        found = [one for one in songs if _position(one.target, target) is not None]
        assert found, "each target is a stretch of some song's target"
        start = _position(found[0].target, target)
        np.testing.assert_allclose(mix, target + found[0].rest[:, start:start + SIZE], atol=1e-6)


def test_training_chunks_move_off_the_grid_validation_chunks_stay_on_it():
    songs = songs_in_memory()
    settings = configuration(batch_size=2)
    transform = WaveformTransform(size=SIZE, step=STEP)
    with BatchSource(songs, transform, settings, workers=0, shuffle_windows=False) as training, \
            BatchSource(songs, transform, settings, workers=0, shuffle_windows=False, random_offsets=False) as plain:
        inputs, targets = training.batch(0, 0)
        np.testing.assert_array_equal(inputs, training.batch(0, 0)[0])
        first, second = (_position(songs[0].target, target) for target in targets)
        assert 0 <= first < STEP <= second < 2 * STEP and (first, second) != (0, STEP)
        assert (first, second) != tuple(_position(songs[0].target, target) for target in training.batch(1, 0)[1])
        for epoch in (0, 3):
            assert [_position(songs[0].target, target) for target in plain.batch(epoch, 0)[1]] == [0, STEP]
        last_chunk = plain.epoch_items(0)[chunk_count(songs[0].frames, SIZE, STEP) + 3]
        assert tuple(last_chunk) == (1, 3)
        assert _position(songs[1].target, plain.make_item(1, 3)[1]) == songs[1].frames - SIZE, "kept inside the song"


def test_a_threaded_augmented_epoch_is_the_same_as_one_built_in_line():
    songs = songs_in_memory(channels=2)
    settings = configuration(stereo=True, batch_size=3, augment=True)
    transform = WaveformTransform(size=SIZE, step=STEP)
    with BatchSource(songs, transform, settings, seed=5, workers=0) as in_line, \
            BatchSource(songs, transform, settings, seed=5, workers=2) as threaded:
        for (inputs, targets), (inputs_again, targets_again) in zip(in_line.epoch(2), threaded.epoch(2), strict=True):
            np.testing.assert_array_equal(inputs, inputs_again)
            np.testing.assert_array_equal(targets, targets_again)
        plain = BatchSource(songs, transform, attrs.evolve(settings, augmentation=Augmentation()), seed=5, workers=0)
        assert not np.array_equal(next(iter(in_line))[1], next(iter(plain))[1]), "gains change the stems"


def _position(stem: np.ndarray, chunk: np.ndarray) -> int | None:
    """Where `chunk` starts in `stem`, or None: found by its first samples, then checked whole."""
    for start in range(stem.shape[1] - chunk.shape[1] + 1):
        if np.array_equal(stem[:, start:start + 8], chunk[:, :8]) and np.array_equal(
                stem[:, start:start + chunk.shape[1]], chunk):
            return start
    return None
