"""Audio loading, saving, resampling and the STFT, on real files written to a temporary folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from unmix.core.data import audio as audio_module
from unmix.core.data.audio import Audio, istft, load_audio, resample, save_audio, stft
from unmix.core.errors import AudioError

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")

RATE = 44100
LEFT_HZ = 440.0
RIGHT_HZ = 660.0


def tone(frequency: float, seconds: float = 0.5, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def stereo(seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    """Different tones left and right, so a swapped or dropped channel shows."""
    return np.stack([tone(LEFT_HZ, seconds, rate), tone(RIGHT_HZ, seconds, rate)])


def peak_hz(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.shape[-1])))
    return float(np.argmax(spectrum) * rate / signal.shape[-1])


def write(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str | None = None) -> Path:
    soundfile.write(str(path), samples.T, rate, subtype=subtype)
    return path


def ffmpeg(*args: str) -> None:
    assert FFMPEG is not None
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """mp3 and m4a made once by ffmpeg from the stereo test tone (encoding dominates the test time)."""
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    folder = tmp_path_factory.mktemp("encoded")
    source = write(folder / "source.wav", stereo(1.0), subtype="FLOAT")
    ffmpeg("-i", str(source), "-c:a", "libmp3lame", "-b:a", "192k", str(folder / "song.mp3"))
    ffmpeg("-i", str(source), "-c:a", "aac", "-b:a", "192k", str(folder / "song.m4a"))
    return {"mp3": folder / "song.mp3", "m4a": folder / "song.m4a"}


# --------------------------------------------------------------------------------------------
# Audio


def test_audio_properties_and_mono_vector():
    audio = Audio(samples=np.zeros(22050, dtype=np.float64), sample_rate=44100)
    assert audio.samples.shape == (1, 22050)
    assert audio.samples.dtype == np.float32
    assert (audio.channels, audio.frames, audio.duration) == (1, 22050, 0.5)
    with pytest.raises(ValueError):
        Audio(samples=np.zeros((1, 2, 3)), sample_rate=44100)
    with pytest.raises(ValueError):
        Audio(samples=np.zeros((1, 2)), sample_rate=0)


# --------------------------------------------------------------------------------------------
# Loading


@pytest.mark.parametrize(
    ("name", "subtype", "tolerance"),
    [
        ("a.wav", "PCM_16", 1e-4),
        ("a.wav", "FLOAT", 1e-7),
        ("a.flac", "PCM_16", 1e-4),
        ("a.flac", "PCM_24", 1e-6),
    ],
)
def test_lossless_formats_load_exactly(tmp_path, name, subtype, tolerance):
    original = stereo()
    audio = load_audio(write(tmp_path / name, original, subtype=subtype))
    assert audio.samples.dtype == np.float32
    assert audio.samples.shape == original.shape
    assert audio.sample_rate == RATE
    assert np.abs(audio.samples - original).max() < tolerance


def test_ogg_loads(tmp_path):
    original = stereo()
    audio = load_audio(write(tmp_path / "a.ogg", original, subtype="VORBIS"))
    assert audio.sample_rate == RATE
    assert audio.channels == 2
    assert abs(audio.frames - original.shape[1]) <= 2048
    assert peak_hz(audio.samples[0], RATE) == pytest.approx(LEFT_HZ, abs=3)
    assert peak_hz(audio.samples[1], RATE) == pytest.approx(RIGHT_HZ, abs=3)


@pytest.mark.parametrize("kind", ["mp3", "m4a"])
def test_lossy_formats_made_by_ffmpeg_load(encoded, kind):
    audio = load_audio(encoded[kind])
    assert audio.samples.dtype == np.float32
    assert audio.sample_rate == RATE
    assert audio.channels == 2
    # Encoders add a little priming and padding; the content must still be the same tones.
    assert abs(audio.frames - RATE) <= 3000
    assert peak_hz(audio.samples[0], RATE) == pytest.approx(LEFT_HZ, abs=3)
    assert peak_hz(audio.samples[1], RATE) == pytest.approx(RIGHT_HZ, abs=3)


def test_m4a_through_ffmpeg_converts_rate_and_channels(encoded):
    audio = load_audio(encoded["m4a"], sample_rate=22050, channels=1)
    assert audio.sample_rate == 22050
    assert audio.samples.shape[0] == 1
    assert abs(audio.frames - 22050) <= 1600
    spectrum = np.abs(np.fft.rfft(audio.samples[0]))
    frequencies = np.fft.rfftfreq(audio.frames, 1 / 22050)
    loudest = sorted(frequencies[np.argsort(spectrum)[-2:]])
    assert loudest == [pytest.approx(LEFT_HZ, abs=3), pytest.approx(RIGHT_HZ, abs=3)]


def test_without_ffmpeg_formats_soundfile_cannot_read_say_to_install_it(encoded, tmp_path, monkeypatch):
    wav = write(tmp_path / "plain.wav", stereo())
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    assert load_audio(wav).channels == 2
    with pytest.raises(AudioError, match="install ffmpeg") as error:
        load_audio(encoded["m4a"])
    assert str(encoded["m4a"]) in str(error.value)


def test_channel_conversion(tmp_path):
    original = stereo()
    path = write(tmp_path / "stereo.wav", original, subtype="FLOAT")
    mono = load_audio(path, channels=1)
    assert mono.samples.shape == (1, original.shape[1])
    np.testing.assert_allclose(mono.samples[0], original.mean(axis=0), atol=1e-7)
    same = load_audio(path, channels=2)
    np.testing.assert_array_equal(same.samples, original)

    single = tone(LEFT_HZ)
    path = write(tmp_path / "mono.wav", single, subtype="FLOAT")
    assert load_audio(path).samples.shape == (1, single.size)
    doubled = load_audio(path, channels=2)
    assert doubled.samples.shape == (2, single.size)
    np.testing.assert_array_equal(doubled.samples[0], single)
    np.testing.assert_array_equal(doubled.samples[1], single)


def test_more_than_two_channels_keep_the_first_ones(tmp_path):
    quad = np.stack([tone(f) for f in (300.0, 400.0, 500.0, 600.0)])
    path = write(tmp_path / "quad.wav", quad, subtype="FLOAT")
    assert load_audio(path).channels == 4
    np.testing.assert_array_equal(load_audio(path, channels=2).samples, quad[:2])
    with pytest.raises(AudioError, match="quad2.wav"):
        load_audio(write(tmp_path / "quad2.wav", quad[:2]), channels=3)


def test_invalid_arguments_are_programming_errors(tmp_path):
    path = write(tmp_path / "a.wav", stereo())
    with pytest.raises(ValueError):
        load_audio(path, sample_rate=0)
    with pytest.raises(ValueError):
        load_audio(path, channels=0)


# --------------------------------------------------------------------------------------------
# Resampling


def test_resample_halves_length_and_keeps_the_frequency():
    signal = np.stack([tone(1000.0, seconds=1.0), tone(1000.0, seconds=1.0, amplitude=0.25)])
    out = resample(signal, 44100, 22050)
    assert out.dtype == np.float32
    assert out.shape[0] == 2
    assert abs(out.shape[1] - signal.shape[1] / 2) <= 1
    for channel in out:
        assert peak_hz(channel, 22050) == pytest.approx(1000.0, abs=2)
    # The amplitude survives (no gain change from the filter), away from the edges.
    assert np.abs(out[0, 1000:-1000]).max() == pytest.approx(0.5, abs=0.01)


def test_resample_keeps_a_vector_a_vector_and_same_rate_is_a_copy():
    signal = tone(1000.0)
    out = resample(signal, 44100, 22050)
    assert out.ndim == 1
    assert abs(out.size - signal.size / 2) <= 1
    same = resample(signal, 44100, 44100)
    assert same is not signal
    np.testing.assert_array_equal(same, signal)


def test_load_audio_resamples(tmp_path):
    path = write(tmp_path / "a.wav", np.stack([tone(1000.0, seconds=1.0)] * 2), subtype="FLOAT")
    audio = load_audio(path, sample_rate=22050)
    assert audio.sample_rate == 22050
    assert abs(audio.frames - 22050) <= 1
    assert peak_hz(audio.samples[1], 22050) == pytest.approx(1000.0, abs=2)


# --------------------------------------------------------------------------------------------
# STFT


@pytest.mark.parametrize("fft_length", [1536, 512])
@pytest.mark.parametrize("length", [1, 383, 12345, 44101])
@pytest.mark.parametrize("stereo_input", [False, True])
def test_stft_istft_round_trip(fft_length, length, stereo_input):
    rng = np.random.default_rng(length)
    shape = (2, length) if stereo_input else (length,)
    signal = rng.uniform(-1, 1, shape).astype(np.float32)
    spectrogram = stft(signal, fft_length)
    assert spectrogram.dtype == np.complex64
    back = istft(spectrogram, length=length)
    assert back.dtype == np.float32
    assert back.shape == signal.shape
    assert np.abs(back - signal).max() < 1e-5


@pytest.mark.parametrize("hop_length", [100, 300, 256])
def test_round_trip_with_other_hops(hop_length):
    signal = np.random.default_rng(0).uniform(-1, 1, (2, 9999)).astype(np.float32)
    back = istft(stft(signal, 512, hop_length), hop_length, length=9999)
    assert np.abs(back - signal).max() < 1e-5


@pytest.mark.parametrize(("fft_length", "hop_length"), [(1536, None), (512, None), (512, 100), (16, 3)])
@pytest.mark.parametrize("length", [0, 1, 127, 128, 129, 384, 385, 1000])
def test_frame_and_bin_counts(fft_length, hop_length, length):
    hop = hop_length or fft_length // 4
    spectrogram = stft(np.zeros((2, length), dtype=np.float32), fft_length, hop_length)
    assert spectrogram.shape == (2, fft_length // 2 + 1, 1 + length // hop)
    assert istft(spectrogram, hop_length).shape == (2, (spectrogram.shape[2] - 1) * hop)


def test_middle_frame_matches_a_direct_computation():
    fft_length, length = 512, 5001
    hop = fft_length // 4
    signal = np.random.default_rng(7).uniform(-1, 1, (2, length)).astype(np.float32)
    spectrogram = stft(signal, fft_length)
    middle = spectrogram.shape[2] // 2
    padded = np.pad(signal.astype(np.float64), ((0, 0), (fft_length // 2, fft_length // 2)))
    segment = padded[:, middle * hop : middle * hop + fft_length]
    periodic_hann = np.hanning(fft_length + 1)[:-1]
    expected = np.fft.rfft(periodic_hann * segment, axis=-1)
    np.testing.assert_allclose(spectrogram[:, :, middle], expected, atol=2e-4, rtol=0)
    # Frame t is centred on sample t * hop: the first frame sees zeros, then the signal's start.
    first = np.fft.rfft(periodic_hann * padded[:, :fft_length], axis=-1)
    np.testing.assert_allclose(spectrogram[:, :, 0], first, atol=2e-4, rtol=0)


def test_stft_of_a_tone_peaks_at_its_bin():
    fft_length = 1536
    frequency = 100 * RATE / fft_length  # exactly bin 100
    spectrogram = stft(tone(frequency, seconds=0.5), fft_length)
    assert spectrogram.ndim == 2
    assert int(np.argmax(np.abs(spectrogram[:, spectrogram.shape[1] // 2]))) == 100


def test_stft_argument_checks():
    signal = np.zeros((1, 1000), dtype=np.float32)
    for fft_length in (8, 15, 513):
        with pytest.raises(ValueError):
            stft(signal, fft_length)
    for hop_length in (0, -1, 513):
        with pytest.raises(ValueError):
            stft(signal, 512, hop_length)
    with pytest.raises(ValueError):
        stft(np.zeros((1, 1, 10)), 512)
    assert stft(signal, 512, 512).shape == (1, 257, 2)


# --------------------------------------------------------------------------------------------
# Bad input


def assert_names_file(error: pytest.ExceptionInfo[AudioError], path: Path) -> None:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    path = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="does not exist") as error:
        load_audio(path)
    assert_names_file(error, path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(AudioError, match="not a file") as error:
        load_audio(tmp_path)
    assert_names_file(error, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match="empty") as error:
        load_audio(path)
    assert_names_file(error, path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not the samples you are looking for\n" * 20)
    with pytest.raises(AudioError, match="not an audio file") as error:
        load_audio(path)
    assert_names_file(error, path)


def test_wav_with_zero_frames(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(str(path), np.zeros((0, 2), dtype=np.float32), RATE)
    assert path.stat().st_size > 0
    with pytest.raises(AudioError, match="no audio samples") as error:
        load_audio(path)
    assert_names_file(error, path)


@needs_ffmpeg
@pytest.mark.parametrize("keep", [10, 200])
def test_truncated_mp3(encoded, tmp_path, keep):
    path = tmp_path / f"cut{keep}.mp3"
    path.write_bytes(encoded["mp3"].read_bytes()[:keep])
    with pytest.raises(AudioError) as error:
        load_audio(path)
    assert_names_file(error, path)


# --------------------------------------------------------------------------------------------
# Saving


@pytest.mark.parametrize(("name", "subtype", "tolerance"), [("o.wav", "FLOAT", 0.0), ("o.flac", None, 1e-4)])
def test_save_and_load_back(tmp_path, name, subtype, tolerance):
    audio = Audio(samples=stereo(), sample_rate=RATE)
    save_audio(tmp_path / name, audio, subtype=subtype)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    back = load_audio(tmp_path / name)
    assert back.sample_rate == RATE
    assert np.abs(back.samples - audio.samples).max() <= tolerance


def test_save_ogg(tmp_path):
    save_audio(tmp_path / "o.ogg", Audio(samples=stereo(), sample_rate=RATE))
    assert [p.name for p in tmp_path.iterdir()] == ["o.ogg"]
    assert load_audio(tmp_path / "o.ogg").channels == 2


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "o.wav"
    save_audio(path, Audio(samples=tone(LEFT_HZ), sample_rate=RATE))
    save_audio(path, Audio(samples=stereo(), sample_rate=RATE))
    assert load_audio(path).channels == 2
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "o.wav"
    save_audio(path, Audio(samples=stereo(), sample_rate=RATE))
    before = path.read_bytes()

    def write_half_then_fail(file, *args, **kwargs):
        file.write(b"RIFF partial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(soundfile, "write", write_half_then_fail)
    with pytest.raises(AudioError, match="disk on fire") as error:
        save_audio(path, Audio(samples=tone(LEFT_HZ), sample_rate=RATE))
    assert_names_file(error, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]


def test_save_into_a_missing_folder(tmp_path):
    path = tmp_path / "nowhere" / "o.wav"
    with pytest.raises(AudioError, match="does not exist") as error:
        save_audio(path, Audio(samples=stereo(), sample_rate=RATE))
    assert_names_file(error, path)
    assert not path.parent.exists()


def test_save_rejects_unknown_extensions_and_subtypes(tmp_path):
    audio = Audio(samples=stereo(), sample_rate=RATE)
    with pytest.raises(AudioError, match="extension"):
        save_audio(tmp_path / "o.mp4", audio)
    with pytest.raises(AudioError, match="subtype"):
        save_audio(tmp_path / "o.wav", audio, subtype="VORBIS")
    assert list(tmp_path.iterdir()) == []


def test_module_imports_no_heavy_dependencies():
    source = Path(audio_module.__file__).read_text()
    header = source.split("\ndef ", 1)[0]
    for name in ("torch", "tensorflow", "jax", "import soundfile", "import soxr"):
        assert name not in header
