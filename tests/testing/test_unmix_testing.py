"""unmix.testing, the public test kit for plugins, used against unmix's own plugins and deliberately broken ones.

Every built-in transform, dataset layout, source and exporter must pass its protocol check (else
the check is wrong, or the built-in is), the band hourglass must make a round trip, and each
check must fail a broken object with a message that names the broken promise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import pytest
import soundfile

from unmix.core import ExportOptions, SongInput
from unmix.core.config.loader import load_configuration
from unmix.core.data.tracks import StemFile, Track
from unmix.core.data.transforms import TrainWindowPredictMask
from unmix.core.plugins import plugin_manager
from unmix.testing import (
    RoundTrip,
    check_dataset,
    check_exporter,
    check_model_builder,
    check_source,
    check_transform,
    round_trip,
    tiny_configuration,
    write_tiny_collection,
)

TINY_BAND_HOURGLASS = {"bands": 16, "stacks": 2, "filters": 8}


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_collection(tmp_path_factory.mktemp("tiny") / "songs", songs=3, seconds=0.5)


def registered(kind: str) -> list[str]:
    return [registration.name for registration in plugin_manager().registry(kind)]


def test_importing_the_kit_loads_neither_pytest_nor_a_framework():
    loaded = subprocess.run([sys.executable, "-c", "import sys, unmix.testing; print(sorted(set(sys.modules) & "
                             "{'pytest', 'torch', 'tensorflow', 'museval'}))"],
                            capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


# ---- the tiny collection and configuration --------------------------------------------------


def test_the_tiny_collection_is_real_audio_in_the_unmixio_layout(tmp_path):
    folder = write_tiny_collection(tmp_path / "songs", songs=2, seconds=0.25, sample_rate=16000, stereo=True,
                                   target="guitar")
    tracks = check_dataset(plugin_manager().get("datasets", "unmixio"), folder, "guitar")
    assert [track.name for track in tracks] == ["song00", "song01"]
    samples, rate = soundfile.read(folder / "song01" / "guitar_song01.wav", dtype="float32")
    assert rate == 16000 and samples.shape == (4000, 2) and not np.allclose(samples[:, 0], samples[:, 1])
    again = write_tiny_collection(tmp_path / "again", songs=2, seconds=0.25, sample_rate=16000, stereo=True,
                                  target="guitar")
    np.testing.assert_array_equal(soundfile.read(again / "song01" / "rest_song01.wav")[0],
                                  soundfile.read(folder / "song01" / "rest_song01.wav")[0])


def test_the_tiny_configuration_fits_its_collection_and_takes_overrides_key_by_key(tmp_path):
    folder = write_tiny_collection(tmp_path / "songs", songs=2, seconds=0.25, sample_rate=11025, stereo=True)
    path = tiny_configuration(tmp_path, folder, backend="torch", model="band-hourglass", options={"bands": 8},
                              epochs=3, collection={"test_data_count": 2}, training={"optimizer": {"lr": 0.5}})
    assert path == tmp_path / "tiny-band-hourglass.jsonc"
    settings = load_configuration(path).settings
    assert (settings.collection.folder, settings.collection.sample_rate, settings.collection.stereo) == (
        str(folder), 11025, True)
    assert settings.collection.test_data_count == 2 and settings.collection.validation_ratio == 0.25
    assert settings.training.optimizer.lr == 0.5 and settings.training.optimizer.name == "adam"
    assert settings.training.epoch.count == 3 and settings.training.model.options == {"bands": 8}
    assert settings.training.backend == "torch"


# ---- unmix's own plugins pass ----------------------------------------------------------------


@pytest.mark.slow
def test_the_band_hourglass_makes_a_round_trip(tmp_path):
    collection = write_tiny_collection(tmp_path / "songs")
    configuration = tiny_configuration(tmp_path, collection, backend="torch", model="band-hourglass",
                                       options=TINY_BAND_HOURGLASS)
    result = round_trip(configuration, tmp_path)
    assert isinstance(result, RoundTrip)
    assert [row["epoch"] for row in result.results] == [1, 2]
    assert (result.run / "weights" / "best.pt").is_file()
    assert set(result.stems) == {"vocals", "rest"}
    mix, rate = soundfile.read(result.mix, dtype="float32")
    target, target_rate = soundfile.read(result.stems["vocals"], dtype="float32")
    rest, _ = soundfile.read(result.stems["rest"], dtype="float32")
    assert rate == target_rate == 8000 and np.max(np.abs(target + rest - mix)) < 1e-4
    assert json.loads(result.evaluation.read_text())["target"] == "vocals"
    assert result.scores["si_sdr"] > result.mixture_scores["si_sdr"], "two epochs already separate the tiny songs"


def test_the_torch_band_hourglass_follows_the_model_protocol(tmp_path, collection):
    configuration = tiny_configuration(tmp_path, collection, backend="torch", model="band-hourglass",
                                       options=TINY_BAND_HOURGLASS)
    model = check_model_builder(plugin_manager().get("models", "torch:band-hourglass"), configuration, tmp_path)
    assert model.backend == "torch"


@pytest.mark.parametrize("name", registered("transforms"))
def test_every_builtin_transform_follows_the_protocol(name):
    transform_class = plugin_manager().get("transforms", name)
    assert check_transform(transform_class).name == name
    check_transform(transform_class, size=12, step=6, bins=5, channels=1)


def test_the_unmixio_and_stems_layouts_follow_the_protocol(tmp_path, collection):
    assert len(check_dataset(plugin_manager().get("datasets", "unmixio"), collection, "vocals")) == 3
    for song in ("one", "two"):
        (tmp_path / "stems" / song).mkdir(parents=True)
        for stem in ("vocals", "drums", "bass"):
            soundfile.write(tmp_path / "stems" / song / f"{stem}.flac", np.full(800, 0.1, np.float32), 8000)
    tracks = check_dataset(plugin_manager().get("datasets", "stems"), tmp_path / "stems", "vocals")
    assert [len(track.rest) for track in tracks] == [2, 2]


def test_the_musdb_stem_layout_follows_the_protocol(tmp_path):
    stempeg = pytest.importorskip("stempeg")
    if shutil.which("ffmpeg") is None:
        pytest.skip("reading .stem.mp4 streams needs ffmpeg")
    example = Path(stempeg.example_stem_path())
    (tmp_path / "musdb").mkdir()
    shutil.copy(example, tmp_path / "musdb" / example.name)
    (track,) = check_dataset(plugin_manager().get("datasets", "musdb-stem"), tmp_path / "musdb", "vocals")
    assert track.target == (StemFile(tmp_path / "musdb" / example.name, 4),)


def test_the_file_and_folder_sources_follow_the_protocol(tmp_path, collection):
    song = collection / "song00" / "vocals_song00.wav"
    assert check_source(plugin_manager().get("sources", "file"), str(song), tmp_path) == [
        SongInput(name="vocals_song00", path=song)]
    songs = check_source(plugin_manager().get("sources", "folder"), str(collection / "song01"), tmp_path)
    assert sorted(found.name for found in songs) == ["rest_song01", "vocals_song01"]


@pytest.mark.parametrize("name", registered("exporters"))
def test_every_builtin_exporter_follows_the_protocol(tmp_path, name):
    files = check_exporter(plugin_manager().get("exporters", name), tmp_path / name)
    assert all(path.suffix == f".{plugin_manager().get('exporters', name).extension}" for path in files)


def test_float_wav_and_npz_read_back_what_was_written(tmp_path):
    def read_wav(path: Path) -> np.ndarray:
        return soundfile.read(path, dtype="float32", always_2d=True)[0].T

    def read_npz(path: Path) -> dict[str, np.ndarray]:
        with np.load(path) as archive:
            return {stem: archive[stem] for stem in archive.files}

    exporters = plugin_manager().registry("exporters")
    check_exporter(exporters.get("wav"), tmp_path / "wav", options=ExportOptions(bit_depth="float"), read=read_wav,
                   tolerance=0.0)
    check_exporter(exporters.get("npz"), tmp_path / "npz", channels=1, read=read_npz, tolerance=0.0)
    check_exporter(exporters.get("wav"), tmp_path / "wav16", read=read_wav, tolerance=2**-14)


# ---- broken objects fail, saying what they broke -------------------------------------------


class GainModel:
    """A model that follows the protocol: one gain per bin, kept in its checkpoint."""

    backend, checkpoint_suffix = "numpy", ".npz"

    def __init__(self, settings, input_shape):
        self.gains = np.random.default_rng().random(input_shape[0]).astype(np.float32)
        self.learning_rate = 0.01

    def trainable_parameters(self):
        return self.gains.size

    def summary(self):
        return "gains"

    def train_epoch(self, batches, steps, on_batch):
        for step, _batch in zip(range(steps), batches, strict=False):
            on_batch(step, {"loss": 1.0})
        return {"loss": 1.0}

    def evaluate(self, batches, steps):
        return {"loss": 1.0}

    def predict(self, inputs):
        return np.broadcast_to(self.gains[None, :, None, None], np.shape(inputs)).astype(np.float32)

    def save_checkpoint(self, path):
        np.savez(path, gains=self.gains)

    def load_checkpoint(self, path):
        with np.load(path) as saved:
            self.gains = saved["gains"]


class ForgetfulModel(GainModel):
    def save_checkpoint(self, path):
        np.savez(path, nothing=np.zeros(0))

    def load_checkpoint(self, path):
        np.load(path).close()


class WrongShapeModel(GainModel):
    def predict(self, inputs):
        return super().predict(inputs)[:, :, :1]


def test_a_model_is_checked_without_any_framework(tmp_path, collection):
    configuration = tiny_configuration(tmp_path, collection, backend="numpy", model="gains")
    assert isinstance(check_model_builder(GainModel, configuration, tmp_path / "good"), GainModel)
    with pytest.raises(AssertionError, match=r"'ForgetfulModel' builds: a new model that loaded 'last.npz' "
                                             r"predicts differently .*a checkpoint must hold every weight"):
        check_model_builder(ForgetfulModel, configuration, tmp_path / "forgetful")
    with pytest.raises(AssertionError, match=r"predict\(\) of inputs \(2, 129, 16, 1\) returned \(2, 129, 1, 1\); "
                                             r"the transform 'train_window_predict_mask' needs .* \(2, 129, 16, 1\)"):
        check_model_builder(WrongShapeModel, load_configuration(configuration).settings, tmp_path / "shape")


@attrs.frozen
class HalfMask(TrainWindowPredictMask):
    name: ClassVar[str] = "half-mask"

    def untransform(self, mix_window, prediction):
        return super().untransform(mix_window, prediction) / 2


@attrs.frozen
class DoubledWeights(TrainWindowPredictMask):
    name: ClassVar[str] = "doubled"

    def synthesis_weights(self):
        return super().synthesis_weights() * 2


def test_a_broken_transform_fails_saying_what_it_broke():
    with pytest.raises(AssertionError, match="transform 'half-mask' .* must give back the mix for a mask of one"):
        check_transform(HalfMask)
    with pytest.raises(AssertionError, match=r"transform 'doubled' .* sum to 2\.\.2, not 1"):
        check_transform(DoubledWeights)
    with pytest.raises(AssertionError, match="is not a subclass of unmix.core.Transform"):
        check_transform(GainModel)


class GreedySource:
    name = "greedy"

    def matches(self, uri):
        return True

    def songs(self, uri, temp_folder):
        return [SongInput(name="lost", path=Path(temp_folder) / "never-written.wav")]


class MissingFileSource(GreedySource):
    name = "missing"

    def matches(self, uri):
        return uri.startswith("missing://")


def test_a_broken_source_fails_saying_what_it_broke(tmp_path):
    with pytest.raises(AssertionError, match="source 'greedy' .* a source that claims URIs it does not handle"):
        check_source(GreedySource(), "greedy://x", tmp_path)
    with pytest.raises(AssertionError, match="song 'lost' names '.*never-written.wav', which is no file"):
        check_source(MissingFileSource(), "missing://x", tmp_path)


class AnyInstrument:
    name = "any-instrument"

    def find_tracks(self, folder, target):
        return [Track(name=song.name, collection="songs", folder=song, target=(StemFile(path),), rest=(StemFile(path),))
                for song in sorted(Path(folder).iterdir()) for path in sorted(song.glob("rest_*.wav"))]


def test_a_broken_dataset_layout_fails_saying_what_it_broke(collection):
    with pytest.raises(AssertionError, match="found 3 songs for an instrument no file names"):
        check_dataset(AnyInstrument(), collection, "vocals")


class StraightToDisk:
    """Writes under the final name at once, and abort() leaves the file: both break the protocol."""

    keeps_peaks = False

    def __init__(self, path):
        self.handle = Path(path).open("wb")

    def write(self, block):
        self.handle.write(np.asarray(block, "<f4").tobytes())

    def close(self):
        self.handle.close()

    def abort(self):
        self.handle.close()


class StraightToDiskExporter:
    name, extension = "straight", "raw"

    def open(self, path, sample_rate, channels, options, *, song, stem, stems):
        return StraightToDisk(path)


def test_a_broken_exporter_fails_saying_what_it_broke(tmp_path):
    with pytest.raises(AssertionError, match="exporter 'straight' .* a file appeared under its final name before "
                                             r"close\(\)"):
        check_exporter(StraightToDiskExporter(), tmp_path / "out")
