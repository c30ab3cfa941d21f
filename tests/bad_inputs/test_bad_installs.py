"""The catalogue's install cases that the test environment can show: a backend that no installed package provides.

This environment has every unmix package, so the backend here is one nobody provides ("jax"); the
missing-package cases proper (unmix-tf without TensorFlow, no unmix-sources, no backend at all) need
environments of their own and live in tests/installs/test_fresh_installs.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_inputs.catalogue import assert_clean_failure, assert_untouched, run_unmix, snapshot
from tests.training_fixtures import write_configuration, write_seed_collection

MISSING_BACKEND = ["training.backend 'jax' has no models installed", "install a plugin for the 'jax' backend"]


def jax_configuration(folder: Path, name: str = "jax.jsonc") -> Path:
    collection = folder / "collection"
    if not collection.exists():
        write_seed_collection(collection, songs=2, seconds=1.0)
    return write_configuration(folder / name, collection, "band-hourglass", epochs=1, backend="jax")


def jax_run_folder(folder: Path) -> Path:
    """A finished run folder as a "jax" backend plugin would have left it, on a machine without that plugin."""
    run = folder / "runs" / "20260101-000000-jax"
    (run / "weights").mkdir(parents=True)
    jax_configuration(folder).replace(run / "configuration.jsonc")
    (run / "model.json").write_text(json.dumps({"backend": "jax", "name": "band-hourglass",
                                                "checkpoint_suffix": ".msgpack", "input_shape": [129, 16, 1]}))
    (run / "weights" / "best.msgpack").write_bytes(b"weights of a backend that is not installed")
    return run


def test_training_a_backend_that_is_not_installed_names_it(tmp_path: Path) -> None:
    configuration = jax_configuration(tmp_path)
    before = snapshot(tmp_path)
    result = run_unmix("train", str(configuration), "--workingdir", str(tmp_path / "work"))
    assert_clean_failure(result, str(configuration), *MISSING_BACKEND)
    assert_untouched(before, tmp_path)
    assert not (tmp_path / "work").exists()


def test_checking_a_configuration_of_a_backend_that_is_not_installed_names_it(tmp_path: Path) -> None:
    configuration = jax_configuration(tmp_path)
    result = run_unmix("config", "check", str(configuration))
    assert_clean_failure(result, str(configuration), *MISSING_BACKEND)


def test_predicting_with_a_run_of_a_backend_that_is_not_installed_names_it(tmp_path: Path) -> None:
    run = jax_run_folder(tmp_path)
    song = tmp_path / "collection" / "song00" / "vocals_song00.wav"
    before = snapshot(tmp_path)
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(tmp_path / "out"))
    assert_clean_failure(result, str(run / "configuration.jsonc"), *MISSING_BACKEND)
    assert_untouched(before, tmp_path)
    assert not (tmp_path / "out").exists()
