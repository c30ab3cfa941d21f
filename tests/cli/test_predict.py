import numpy as np
import pytest
import soundfile

from tests.helpers import assert_one_line_error, run_unmix
from tests.training_fixtures import set_gain_checkpoint

# Trains a run and runs the real `unmix` command on it; the fast subset skips this module.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(gain_run, gain_environment):
    """The shared gain run with a mask of 0.5, the configuration it was trained with, and its environment."""
    set_gain_checkpoint(gain_run, 0.5)
    # train_gain_run writes tiny.jsonc into the working folder that holds runs/.
    return gain_run, gain_run.parents[1] / "tiny.jsonc", gain_environment


def write_song(path, seconds=1.5, rate=8000, channels=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    soundfile.write(path, rng.normal(0, 0.1, (int(seconds * rate), channels)).astype(np.float32), rate)
    return path


def test_predict_a_song_into_the_run_folder(trained, tmp_path):
    run, _, environment = trained
    song = write_song(tmp_path / "My Song.wav")
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), env=environment)
    assert result.returncode == 0, result.stderr
    target, rate = soundfile.read(run / "predictions" / "My Song_vocals.wav")
    rest, _ = soundfile.read(run / "predictions" / "My Song_rest.wav")
    original, _ = soundfile.read(song)
    assert rate == 8000 and target.shape == original.shape
    np.testing.assert_allclose(target + rest, original, atol=2 / 32768)
    assert "separated 1 of 1 songs" in result.stdout


def test_predict_a_folder_with_weights_format_and_template(trained, tmp_path):
    run, configuration, environment = trained
    write_song(tmp_path / "songs" / "a.wav")
    write_song(tmp_path / "songs" / "nested" / "b.flac", channels=1)
    result = run_unmix("predict", "--weights", str(run / "weights" / "best.npz"), "--configuration",
                       str(configuration), "--songs", str(tmp_path / "songs"), "--output", str(tmp_path / "out"),
                       "--format", "flac", "--filename", "{stem}-{song}.{ext}", env=environment)
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == ["rest-a.flac", "rest-b.flac", "vocals-a.flac", "vocals-b.flac"]
    assert soundfile.info(tmp_path / "out" / "vocals-b.flac").channels == 1


def test_npz_writes_one_archive_per_song_whose_stems_add_up_to_it(trained, tmp_path):
    run, _, environment = trained
    songs = {name: write_song(tmp_path / "songs" / f"{name}.wav", channels=channels)
             for name, channels in (("a", 2), ("b b", 1))}
    result = run_unmix("predict", "--run-folder", str(run), "--songs", str(tmp_path / "songs"), "--output",
                       str(tmp_path / "out"), "--format", "npz", env=environment)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.npz", "b b.npz"]
    for name, song in songs.items():
        original, rate = soundfile.read(song, dtype="float32", always_2d=True)
        with np.load(tmp_path / "out" / f"{name}.npz") as archive:
            assert sorted(archive.files) == ["rest", "sample_rate", "vocals"] and int(archive["sample_rate"]) == rate
            assert archive["vocals"].shape == original.T.shape
            np.testing.assert_allclose(archive["vocals"] + archive["rest"], original.T, atol=1e-6)
            np.testing.assert_allclose(archive["vocals"], 0.5 * original.T, atol=5e-3)
        assert result.stdout.count(f"{name}.npz") == 1


def test_bad_prediction_input_is_one_line(trained, tmp_path):
    run, configuration, environment = trained
    song = write_song(tmp_path / "song.wav")
    (tmp_path / "noaudio").mkdir()
    (tmp_path / "noaudio" / "notes.txt").write_text("no audio here")
    (tmp_path / "fake.wav").write_text("this is text, not audio")
    (tmp_path / "a-file").write_text("")
    cases = [
        (["--run-folder", str(tmp_path / "missing"), "--song", str(song)], ["missing", "does not exist"]),
        (["--weights", str(tmp_path / "none.npz"), "--configuration", str(configuration), "--song", str(song)],
         ["none.npz"]),
        (["--run-folder", str(run), "--song", str(tmp_path / "fake.wav")], ["fake.wav"]),
        (["--run-folder", str(run), "--songs", str(tmp_path / "noaudio")], ["noaudio"]),
        (["--run-folder", str(run), "--song", str(song), "--output", str(tmp_path / "a-file" / "out")], ["a-file"]),
        (["--run-folder", str(run), "--youtube", "https://www.youtube.com/watch?v=short"], ["youtube"]),
    ]
    for arguments, fragments in cases:
        assert_one_line_error(run_unmix("predict", *arguments, env=environment), *fragments)


def test_weights_of_another_backend_are_refused(trained, tmp_path):
    _, configuration, environment = trained
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"not really keras")
    result = run_unmix("predict", "--weights", str(keras_file), "--configuration", str(configuration), "--song",
                       str(write_song(tmp_path / "s.wav")), env=environment)
    assert_one_line_error(result, "model.keras", "configuration the weights were trained with")


TONE_SOURCE = """
    import numpy as np
    import soundfile
    from unmix.core.hookspecs import hookimpl
    from unmix.core.interfaces import SongInput

    class ToneSource:
        name = "tone"

        def matches(self, uri):
            return uri.startswith("tone://")

        def songs(self, uri, temp_folder):
            frequency = float(uri.removeprefix("tone://"))
            path = temp_folder / f"tone-{frequency:g}.wav"
            time = np.arange(16000) / 8000
            soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency * time), 8000)
            return [SongInput(name=path.stem, path=path)]

    @hookimpl
    def register_sources(register):
        register("tone", ToneSource())
"""


def test_song_accepts_any_uri_a_source_plugin_claims(trained, tmp_path):
    from tests.plugin_fixtures import install_plugin_distribution

    run, _, environment = trained
    site = install_plugin_distribution(tmp_path / "tone-site", "unmix-tone-source", "0.1",
                                       {"unmix_tone_source": TONE_SOURCE}, {"tone-source": "unmix_tone_source"})
    environment = {**environment, "PYTHONPATH": f"{environment['PYTHONPATH']}:{site}"}
    result = run_unmix("predict", "--run-folder", str(run), "--song", "tone://440", "--output",
                       str(tmp_path / "out"), env=environment)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["tone-440_rest.wav", "tone-440_vocals.wav"]


@pytest.mark.parametrize(("name", "rate", "channels"), [
    ("eight channels.wav", 8000, 8),
    ("low rate.wav", 8000, 1),
    ("high rate.flac", 192000, 2),
    ("it's \"Déjà vu\" – Ærø.wav", 44100, 2),
])
def test_stems_keep_the_input_rate_channels_and_length(trained, tmp_path, name, rate, channels):
    run, _, environment = trained
    song = write_song(tmp_path / name, seconds=1.3, rate=rate, channels=channels)
    output = tmp_path / "out"
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(output),
                       "--bit-depth", "float", env=environment)
    assert result.returncode == 0, result.stderr
    original, _ = soundfile.read(song, dtype="float32", always_2d=True)
    # Characters some file systems refuse (the quotes) are replaced in the song name.
    files = {path.stem.rsplit("_", 1)[1]: path for path in output.iterdir()}
    assert sorted(files) == ["rest", "vocals"]
    stems = {}
    for kind, path in files.items():
        stems[kind], written_rate = soundfile.read(path, dtype="float32", always_2d=True)
        assert written_rate == rate and stems[kind].shape == original.shape
    np.testing.assert_allclose(stems["vocals"] + stems["rest"], original, atol=1e-5)


def test_rerunning_into_an_output_folder_inside_the_songs_folder(trained, tmp_path):
    run, _, environment = trained
    songs = tmp_path / "songs"
    write_song(songs / "live.wav")
    write_song(songs / "live_rest.wav")  # the user's own file: a song, not an output
    output = songs / "separated"
    arguments = ["predict", "--run-folder", str(run), "--songs", str(songs), "--output", str(output)]
    first = run_unmix(*arguments, env=environment)
    assert first.returncode == 0, first.stderr
    expected = ["live_rest_rest.wav", "live_rest_vocals.wav", "live_rest.wav", "live_vocals.wav"]
    assert sorted(path.name for path in output.iterdir()) == sorted(expected)
    user_file = (songs / "live_rest.wav").read_bytes()

    assert_one_line_error(run_unmix(*arguments, env=environment), "4 output files already exist", "--overwrite")
    again = run_unmix(*arguments, "--overwrite", env=environment)
    assert again.returncode == 0, again.stderr
    assert "separated 2 of 2 songs" in again.stdout, "the first run's stems must not be taken as songs"
    assert sorted(path.name for path in output.iterdir()) == sorted(expected)
    assert (songs / "live_rest.wav").read_bytes() == user_file


def test_a_large_batch_size_separates_the_same(trained, tmp_path):
    run, _, environment = trained
    song = write_song(tmp_path / "song.wav")
    outputs = {}
    for batch_size in ("1", "64"):
        output = tmp_path / batch_size
        result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(output),
                           "--batch-size", batch_size, "--bit-depth", "float", env=environment)
        assert result.returncode == 0, result.stderr
        outputs[batch_size] = soundfile.read(output / "song_vocals.wav")[0]
    np.testing.assert_allclose(outputs["1"], outputs["64"], atol=1e-6)
