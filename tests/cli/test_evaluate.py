import csv
import json
import shutil

import numpy as np
import pytest
import soundfile

from tests.bad_inputs.catalogue import assert_clean_failure, assert_untouched, snapshot
from tests.helpers import assert_one_line_error, run_unmix
from tests.training_fixtures import (
    register_gain_model,
    train_gain_run,
    write_configuration,
    write_seed_collection,
)
from unmix.core.data.cache import open_songs
from unmix.core.training.driver import train

# Trains a run and runs the real `unmix` command on it; the fast subset skips this module.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, gain_environment):
    """A gain run with more songs and epochs than the shared gain_run, since evaluation scores its test songs."""
    folder = tmp_path_factory.mktemp("evaluate")
    run = train_gain_run(folder, songs=6, epochs=3)
    collection = folder / "collection"
    return run, collection, gain_environment


def test_evaluate_writes_reports_with_baselines(trained):
    run, collection, environment = trained
    result = run_unmix("evaluate", "--run-folder", str(run), "--collection", str(collection),
                       "--test-data-count", "2", "--jobs", "2", env=environment, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "museval_sdr" in result.stdout and "mixture" in result.stdout and "oracle" in result.stdout
    report = json.loads((run / "evaluation.json").read_text())
    assert {entry["method"] for entry in report["songs"]} == {"model", "mixture", "oracle"}
    assert len({entry["song"] for entry in report["songs"]}) == 2
    summary = report["summary"]
    assert summary["oracle"]["target"]["sdr"]["median"] > summary["mixture"]["target"]["sdr"]["median"]
    with (run / "accuracy.csv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    assert [row["type"] for row in rows] == ["model", "mixture", "oracle"]
    assert float(rows[0]["voc_sdr"]) == pytest.approx(summary["model"]["target"]["bss_sdr"]["median"], abs=1e-3)
    assert (run / "evaluation.txt").is_file() and (run / "plots" / "evaluation_sdr.png").is_file()
    assert list((run / "plots").glob("spectrograms_*.png"))


def test_accuracy_tests_during_training_append_rows_per_epoch(tmp_path):
    register_gain_model()
    collection = write_seed_collection(tmp_path / "collection", songs=5, seconds=1.5)
    configuration = write_configuration(tmp_path / "tested.jsonc", collection, "gain-mask", epochs=4)
    text = configuration.read_text().replace('"test_frequency": 0', '"test_frequency": 2')
    configuration.write_text(text)
    run = train(configuration, working_directory=tmp_path).path
    with (run / "accuracy.csv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    assert [(row["epoch"], row["type"]) for row in rows] == [
        ("2", "model"), ("2", "mixture"), ("2", "oracle"), ("4", "model"), ("4", "mixture"), ("4", "oracle")]


def test_bad_evaluation_input_is_one_line(trained, tmp_path):
    run, _, environment = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_unmix("evaluate", "--run-folder", str(tmp_path / "nope"), "--collection",
                                    str(empty), env=environment), "nope")
    assert_one_line_error(run_unmix("evaluate", "--run-folder", str(run), "--collection", str(empty),
                                    env=environment), "empty")
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    (no_model / "configuration.jsonc").write_text((run / "configuration.jsonc").read_text())
    assert_one_line_error(run_unmix("evaluate", "--run-folder", str(no_model), "--collection", str(empty),
                                    env=environment), "no-model")


def test_a_song_with_nan_samples_is_refused_naming_the_song_and_the_sample(trained, tmp_path):
    run, collection, environment = trained
    songs = tmp_path / "songs"
    shutil.copytree(collection / "song00", songs / "song00")
    vocals = songs / "song00" / "vocals_song00.wav"
    samples, rate = soundfile.read(vocals, dtype="float32")
    samples[1234] = np.nan
    soundfile.write(vocals, samples, rate, subtype="FLOAT")
    before = snapshot(run)
    result = run_unmix("evaluate", "--run-folder", str(run), "--collection", str(songs), "--test-data-count", "0",
                       env=environment, timeout=300)
    line = assert_clean_failure(result, "song00", "sample 1234 of channel 0 is NaN", "repair or remove")
    assert "model" not in line
    assert_untouched(before, run)


def test_a_damaged_cache_with_nan_samples_is_refused_naming_the_cached_stem(trained, tmp_path):
    run, collection, environment = trained
    songs = tmp_path / "songs"
    shutil.copytree(collection / "song01", songs / "song01")
    (cached,) = open_songs(songs, sample_rate=8000, channels=1, target="vocals")
    rest = np.load(cached.rest_path, mmap_mode="r+")
    rest[0, 4321] = np.inf
    rest.flush()
    del rest
    before = snapshot(run)
    result = run_unmix("evaluate", "--run-folder", str(run), "--collection", str(songs), "--test-data-count", "0",
                       env=environment, timeout=300)
    assert_clean_failure(result, "song 'song01', rest stem", str(cached.rest_path), "sample 4321 of channel 0 is +inf")
    assert_untouched(before, run)
