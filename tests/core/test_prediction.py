import attrs
import numpy as np
import pytest
import soundfile

from tests.training_fixtures import set_gain_checkpoint
from unmix.core import api
from unmix.core.data.audio import resample
from unmix.core.errors import AudioError
from unmix.core.interfaces import ExportOptions
from unmix.core.separation.prediction import exporter_for, separate_file


def tone(seconds, rate, channels, seed=0):
    rng = np.random.default_rng(seed)
    time_axis = np.arange(int(seconds * rate)) / rate
    signal = [0.3 * np.sin(2 * np.pi * (330 + 110 * c) * time_axis) + rng.normal(0, 0.05, time_axis.size)
              for c in range(channels)]
    return np.asarray(signal, dtype=np.float32)


def db(error, reference):
    return 10 * np.log10(np.sum(error**2) / np.sum(reference**2) + 1e-30)


def separate_to_files(engine, path, folder, chunk_seconds=None):
    if chunk_seconds is not None:
        engine.settings = attrs.evolve(
            engine.settings, prediction=attrs.evolve(engine.settings.prediction, chunk_seconds=chunk_seconds))
    result = separate_file(engine, path, folder, exporter_for("wav"), ExportOptions(bit_depth="float"),
                           "{song}_{stem}.{ext}", progress=False)
    target, target_rate = soundfile.read(result.files["vocals"], dtype="float32", always_2d=True)
    rest, rest_rate = soundfile.read(result.files["rest"], dtype="float32", always_2d=True)
    assert target_rate == rest_rate
    return target.T, rest.T, target_rate


@pytest.mark.parametrize(("rate", "channels", "seconds"), [(8000, 1, 3.0001), (44100, 2, 2.5), (22050, 1, 0.7)])
def test_mask_one_reproduces_the_input(gain_run, tmp_path, rate, channels, seconds):
    set_gain_checkpoint(gain_run, 1.0)
    engine = api.create_engine(gain_run)
    audio = tone(seconds, rate, channels)
    soundfile.write(tmp_path / "song.wav", audio.T, rate, subtype="FLOAT")
    target, rest, out_rate = separate_to_files(engine, tmp_path / "song.wav", tmp_path / "out")
    assert out_rate == rate
    assert target.shape == audio.shape
    np.testing.assert_allclose(target + rest, audio, atol=1e-6)
    if rate == engine.sample_rate:
        assert db(target - audio, audio) < -60
        assert db(rest, audio) < -60
    else:  # the model hears only what its rate can carry; the rest keeps everything above
        in_band = resample(resample(audio, rate, engine.sample_rate), engine.sample_rate, rate)[:, :audio.shape[1]]
        target = target[:, :in_band.shape[1]]
        assert db(target - in_band, in_band) < -40


def test_mask_zero_gives_silence_and_the_rest_is_the_input(gain_run, tmp_path):
    set_gain_checkpoint(gain_run, 0.0)
    engine = api.create_engine(gain_run)
    audio = tone(2.0, 8000, 2)
    soundfile.write(tmp_path / "song.wav", audio.T, 8000, subtype="FLOAT")
    target, rest, _ = separate_to_files(engine, tmp_path / "song.wav", tmp_path / "out")
    assert np.abs(target).max() == 0
    np.testing.assert_array_equal(rest, audio)


def test_streaming_in_chunks_equals_separating_the_whole_song(gain_run, tmp_path):
    set_gain_checkpoint(gain_run, 0.5)
    engine = api.create_engine(gain_run)
    audio = tone(7.3, 8000, 1, seed=3)
    soundfile.write(tmp_path / "song.wav", audio.T, 8000, subtype="FLOAT")
    chunked_target, _, _ = separate_to_files(engine, tmp_path / "song.wav", tmp_path / "chunked", chunk_seconds=1.0)
    whole_target, _ = api.separate(engine, audio, 8000)
    np.testing.assert_allclose(chunked_target, whole_target, atol=1e-6)
    np.testing.assert_allclose(whole_target, 0.5 * audio, atol=2e-3)


def test_run_prediction_keeps_the_seed_api(gain_run):
    set_gain_checkpoint(gain_run, 1.0)
    engine = api.create_engine(gain_run)
    audio = tone(1.0, 8000, 2)
    from unmix.core.data.audio import stft

    spectrogram = stft(audio, 256)
    target, rest = api.run_prediction(engine, [spectrogram[0], spectrogram[1]])
    assert target.shape == rest.shape == (2, audio.shape[1])
    assert db(target - audio, audio) < -60


def test_separate_a_plain_waveform_at_another_rate(gain_run):
    set_gain_checkpoint(gain_run, 1.0)
    engine = api.create_engine(gain_run)
    audio = tone(1.5, 44100, 1)[0]
    target, rest = api.separate(engine, audio, 44100)
    assert target.shape == audio.shape
    np.testing.assert_allclose(target + rest, audio, atol=1e-6)


def count_network_calls(model, backend):
    """Batch sizes of every network call: a forward hook on the torch module, or a wrapper around the
    compiled Keras prediction step (calls inside a tf.function are only seen while tracing)."""
    calls = []
    if backend == "torch":
        model.network.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    else:
        compiled = model._predict_step

        def counted(inputs):
            calls.append(int(inputs.shape[0]))
            return compiled(inputs)

        model._predict_step = counted
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_the_batch_size_reaches_the_network(backend):
    pytest.importorskip("torch" if backend == "torch" else "tensorflow")
    from tests.tiny_models import FRAMES, build, tiny_settings
    from unmix.core.data.transforms import create_transform
    from unmix.core.data.windows import song_frame_count, window_count
    from unmix.core.separation.prediction import Engine

    settings = tiny_settings(backend=backend)
    model = build(settings)
    calls = count_network_calls(model, backend)
    # Larger than the configuration's prediction.batch_size, which the backends used to re-split by.
    large = 2 * settings.prediction.batch_size
    audio = tone(0.5, settings.collection.sample_rate, 1)
    windows = window_count(song_frame_count(audio.shape[1], settings.hop_length), FRAMES, FRAMES)
    assert windows > large, "the song must need several large batches"
    for batch_size in (1, large):
        calls.clear()
        engine = Engine(model=model, transform=create_transform(settings), settings=settings, batch_size=batch_size)
        engine.separate_samples(audio)
        full, partial = divmod(windows, batch_size)
        assert calls == [batch_size] * full + ([partial] if partial else [])


@pytest.mark.parametrize("song", ["../../escaped", "/etc/passwd", "..", "a\\..\\..\\b"])
def test_a_song_name_cannot_lead_outside_the_output_folder(tmp_path, song):
    from unmix.core.separation.prediction import output_files

    folder = tmp_path / "out"
    for template in ("{song}_{stem}.{ext}", "{song}/{stem}.{ext}"):
        for path in output_files("vocals", song, folder, template, "wav").values():
            assert folder.resolve() in path.resolve().parents, (template, path)


def test_separate_refuses_nan_samples_with_their_position(gain_run):
    from unmix.core.errors import AudioError

    engine = api.create_engine(gain_run)
    audio = tone(1.0, 8000, 2)
    audio[1, 777] = np.nan
    with pytest.raises(AudioError, match="sample 777 of channel 1 is NaN"):
        api.separate(engine, audio, 8000)


def test_separate_refuses_samples_laid_out_as_soundfile_reads_them(gain_run):
    engine = api.create_engine(gain_run)
    with pytest.raises(AudioError, match=r"shape \(4000, 1\); give \(channels, n\)"):
        api.separate(engine, np.zeros((4000, 1), dtype=np.float32), 8000)
