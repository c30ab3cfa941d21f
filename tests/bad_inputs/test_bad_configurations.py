"""The catalogue's configuration cases: bad jsonc files, values and names through the real `unmix` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bad_inputs.catalogue import assert_clean_failure, assert_untouched, clean_environment, run_unmix, snapshot
from tests.helpers import REPOSITORY
from tests.training_fixtures import gain_plugin_path, write_configuration, write_seed_collection

# Every case runs the real `unmix` command in a subprocess (about a second each); the fast subset skips them.
pytestmark = pytest.mark.slow


def configuration_file(folder: Path, name: str, text: str) -> Path:
    """A configuration beside an empty master.jsonc, so only what the case writes is set."""
    (folder / "master.jsonc").write_text("{}")
    path = folder / name
    path.write_bytes(text.encode("utf-8"))
    return path


BAD_VALUES = [
    ("infinite-batch", '{"training": {"batch_size": "Infinity"}}', ["training.batch_size", "whole number"]),
    ("overflowing-batch", '{"training": {"batch_size": 1e400}}', ["training.batch_size", "whole number"]),
    ("huge-epoch-count", '{"training": {"epoch": {"count": 99999999999999999999}}}',
     ["training.epoch.count", "too large"]),
    ("nan-learning-rate", '{"training": {"optimizer": {"lr": "nan"}}}', ["training.optimizer.lr", "finite number"]),
    ("infinite-learning-rate", '{"training": {"optimizer": {"lr": -1e999}}}',
     ["training.optimizer.lr", "finite number"]),
    ("long-log-file", json.dumps({"environment": {"log_file": "l" * 300 + ".txt"}}),
     ["environment.log_file", "255 bytes"]),
    ("log-file-outside-run", '{"environment": {"log_file": "../../logs.txt"}}',
     ["environment.log_file", "plain file name"]),
    ("results-outside-run", '{"training": {"callbacks": {"csv_logger": {"file_name": "/tmp/results.csv"}}}}',
     ["training.callbacks.csv_logger.file_name", "plain file name"]),
    ("two-rate-schedules", '{"training": {"callbacks": {"cosine_learningrate": {"enabled": true}, '
     '"reduce_learningrate": {"enabled": true}}}}', ["training.callbacks.cosine_learningrate", "disable one"]),
    ("negative-time-limit", '{"training": {"time_limit_minutes": -5}}', ["training.time_limit_minutes"]),
    ("function-call", '{"training": {"batch_size": "int(__import__(\'os\').system(\'touch PWNED\'))"}}',
     ["training.batch_size"]),
    ("unknown-key", '{"training": {"bach_size": 4}}', ["training.bach_size", "did you mean 'batch_size'"]),
    ("wrong-type", '{"collection": {"stereo": 2}}', ["collection.stereo", "true or false"]),
    ("missing-variable", '{"collection": {"song_limit": "int(env(\'UNMIX_SONG_LIMIT\'))"}}',
     ["collection.song_limit", "UNMIX_SONG_LIMIT"]),
    ("unclosed-comment", '{"training": {} /* forgot to close', ["unclosed-comment.jsonc", "never closed"]),
    ("not-an-object", "[1, 2, 3]", ["not-an-object.jsonc", "JSON object"]),
]


@pytest.mark.parametrize(("name", "text", "fragments"), BAD_VALUES, ids=[case[0] for case in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_the_key_and_file(tmp_path: Path, name: str, text: str,
                                                         fragments: list[str]) -> None:
    path = configuration_file(tmp_path, f"{name}.jsonc", text)
    before = snapshot(tmp_path)
    for command in ("show", "check"):
        assert_clean_failure(run_unmix("config", command, str(path), cwd=tmp_path), f"{name}.jsonc", *fragments)
    assert not (tmp_path / "PWNED").exists()
    assert_untouched(before, tmp_path)


def test_a_base_cycle_names_the_chain(tmp_path: Path) -> None:
    configuration_file(tmp_path, "a.jsonc", '{"base": "b.jsonc"}')
    configuration_file(tmp_path, "b.jsonc", '{"base": "a.jsonc"}')
    result = run_unmix("config", "check", str(tmp_path / "a.jsonc"), cwd=tmp_path)
    assert_clean_failure(result, "base cycle", "a.jsonc", "b.jsonc")


def test_a_configuration_that_is_a_folder_or_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "folder.jsonc").mkdir()
    assert_clean_failure(run_unmix("config", "check", str(tmp_path / "folder.jsonc")), "folder.jsonc", "directory")
    latin = configuration_file(tmp_path, "latin.jsonc", "")
    latin.write_bytes('{"environment": {"name": "Bj\u00f6rk"}}'.encode("latin-1"))
    assert_clean_failure(run_unmix("config", "check", str(latin), cwd=tmp_path), "latin.jsonc", "not UTF-8")


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = configuration_file(tmp_path, "notepad.jsonc", '\ufeff{"training": {"batch_size": 3}}')
    result = run_unmix("config", "show", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["training"]["batch_size"] == 3


def test_a_repeated_key_is_a_warning_with_both_lines(tmp_path: Path) -> None:
    path = configuration_file(tmp_path, "twice.jsonc", '{\n  "training": {\n    "batch_size": 3,\n'
                                                       '    // a comment with "batch_size": 1\n'
                                                       '    "batch_size": 5\n  }\n}\n')
    result = run_unmix("config", "show", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["training"]["batch_size"] == 5
    assert "twice.jsonc: line 5: key 'batch_size' repeats the one at line 3" in result.stderr
    assert result.stderr.count("repeats") == 1


def tiny_training(tmp_path: Path, model: str, **configuration: dict) -> tuple[Path, dict[str, str]]:
    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=1.0)
    path = write_configuration(tmp_path / "tiny.jsonc", collection, model, epochs=1)
    data = json.loads(path.read_text().split("\n", 1)[1])
    for section, values in configuration.items():
        data[section].update(values)
    path.write_text(json.dumps(data))
    return path, clean_environment(PYTHONPATH=gain_plugin_path(tmp_path / "site"))


def test_an_unknown_model_fails_before_decoding_and_leaves_no_run_folder(tmp_path: Path) -> None:
    path, environment = tiny_training(tmp_path, "gain-mask-typo")
    result = run_unmix("train", str(path), "--workingdir", str(tmp_path / "work"), env=environment)
    assert_clean_failure(result, "tiny.jsonc", "training.model.name", "did you mean 'numpy:gain-mask'")
    assert not (tmp_path / "work" / "runs").exists() or not any((tmp_path / "work" / "runs").iterdir())
    assert not (tmp_path / "collection" / ".unmix-cache").exists(), "the collection was decoded before the check"


def test_without_validation_songs_the_log_says_what_is_watched(tmp_path: Path) -> None:
    path, environment = tiny_training(tmp_path, "gain-mask", collection={"validation_ratio": 0.0})
    result = run_unmix("train", str(path), "--workingdir", str(tmp_path), env=environment)
    assert result.returncode == 0, result.stderr
    assert "no validation songs" in result.stderr
    assert "the best checkpoint watches loss instead of val_loss" in result.stderr


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_config_check_refuses_the_model_options_training_would_refuse(tmp_path: Path, backend: str) -> None:
    child = tmp_path / "child.jsonc"
    child.write_text(json.dumps({"base": "cpu/band-hourglass.jsonc",
                                 "training": {"backend": backend, "model": {"options": {"stackz": 3}}}}))
    result = run_unmix("config", "check", str(child), cwd=REPOSITORY)
    assert_clean_failure(result, "child.jsonc", "training.model.options.stackz", "did you mean 'stacks'")


def test_training_refuses_bad_model_options_before_decoding_any_song(tmp_path: Path) -> None:
    collection = write_seed_collection(tmp_path / "collection", songs=4, seconds=1.0)
    path = write_configuration(tmp_path / "tiny.jsonc", collection, "band-hourglass", epochs=1, backend="torch",
                               bands=16, stacks=9)
    result = run_unmix("train", str(path), "--workingdir", str(tmp_path / "work"))
    assert_clean_failure(result, "tiny.jsonc", "stacks 9")
    assert not (tmp_path / "work").exists()
    assert not (collection / ".unmix-cache").exists(), "the collection was decoded before the check"
