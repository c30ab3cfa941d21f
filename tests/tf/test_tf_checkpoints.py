"""Checkpoints: exact resume with optimiser state, rebuilding from one file, and clear errors for bad files."""

from __future__ import annotations

import zipfile
from unittest import mock

import numpy as np
import pytest

from tests import tiny_models
from tests.tiny_models import half_gain_batches, tiny_settings
from unmix.core.errors import ModelError
from unmix.tf.model import load_checkpoint_model

# Keras' own saving code converts variables in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

# Batch norm included, so its moving statistics (non-trainable weights) must survive the round trip too.
OPTIONS = {"stacks": 2, "initial_convolutions": {"batchnormalization": True},
           "hg_module": {"filters": 8, "batchnormalization": True}}


def build(options=OPTIONS, **training):
    settings = tiny_settings(options=options, metrics=["mean_pred", "max_pred"], **training)
    return tiny_models.build(settings)


def same_weights(first, second) -> bool:
    pairs = zip(first.network.get_weights(), second.network.get_weights(), strict=True)
    return all(np.array_equal(a, b) for a, b in pairs)


def same_optimizer_state(first, second) -> bool:
    pairs = zip(first.optimizer.variables, second.optimizer.variables, strict=True)
    return all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in pairs)


def ignore(step, running):
    pass


# Trains two Keras steps (seconds, most of it compiling); the tests that use it are slow.
@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    """The bytes of a checkpoint of the tiny hourglass after two steps."""
    model = build()
    model.train_epoch(half_gain_batches(2, seed=11), 2, ignore)
    checkpoint = tmp_path_factory.mktemp("saved") / "last.keras"
    model.save_checkpoint(checkpoint)
    return checkpoint.read_bytes()


@pytest.fixture
def checkpoint(tmp_path, saved_bytes):
    path = tmp_path / "last.keras"
    path.write_bytes(saved_bytes)
    return path


@pytest.fixture(scope="module")
def untrained():
    """A model to load into; every load below fails before it changes any weight."""
    return build()


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    batches = list(half_gain_batches(3, seed=11))
    model = build()
    model.train_epoch(batches[:2], 2, ignore)
    model.learning_rate = 5e-4
    checkpoint = tmp_path / "last.keras"
    model.save_checkpoint(checkpoint)

    resumed = build()
    resumed.load_checkpoint(checkpoint)
    rebuilt = load_checkpoint_model(checkpoint)
    for copy in (resumed, rebuilt):
        assert copy.iterations == model.iterations == 2
        assert copy.learning_rate == pytest.approx(5e-4)
        assert same_weights(model, copy)
        assert same_optimizer_state(model, copy)
    np.testing.assert_array_equal(rebuilt.predict(batches[0][0]), model.predict(batches[0][0]))
    for each in (model, resumed, rebuilt):
        each.train_epoch(batches[2:], 1, ignore)
    assert same_weights(model, resumed)
    assert same_weights(model, rebuilt)


@pytest.mark.slow
def test_a_checkpoint_alone_describes_its_model(checkpoint, untrained):
    rebuilt = load_checkpoint_model(checkpoint)
    assert rebuilt.description["model"] == "hourglass"
    assert rebuilt.description["loss_function"] == "L11_loss"
    assert rebuilt.description["metrics"] == ["mean_pred", "max_pred"]
    assert rebuilt.trainable_parameters() == untrained.trainable_parameters()


@pytest.mark.slow
def test_saving_replaces_the_file_and_leaves_no_temporary_files(checkpoint, untrained):
    untrained.save_checkpoint(checkpoint)
    assert [path.name for path in checkpoint.parent.iterdir()] == ["last.keras"]
    assert load_checkpoint_model(checkpoint).iterations == 0


@pytest.mark.slow
def test_a_failed_save_keeps_the_previous_checkpoint(checkpoint, untrained, saved_bytes):
    with mock.patch.object(untrained.network, "save", side_effect=OSError("No space left on device")):
        with pytest.raises(OSError):
            untrained.save_checkpoint(checkpoint)
    assert checkpoint.read_bytes() == saved_bytes
    assert [path.name for path in checkpoint.parent.iterdir()] == ["last.keras"]


def corrupt(checkpoint, how: str):
    data = checkpoint.read_bytes()
    if how == "truncated":
        checkpoint.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        checkpoint.write_bytes(b"not a checkpoint" * 100)
    elif how == "flipped byte":
        middle = len(data) // 2
        checkpoint.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    elif how == "empty":
        checkpoint.write_bytes(b"")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "garbage", "flipped byte", "empty"])
def test_a_corrupt_checkpoint_is_one_clear_line(checkpoint, untrained, how):
    corrupt(checkpoint, how)
    for load in (untrained.load_checkpoint, load_checkpoint_model):
        with pytest.raises(ModelError) as error:
            load(checkpoint)
        message = str(error.value)
        assert "\n" not in message
        assert f"checkpoint '{checkpoint}'" in message
        assert "use another checkpoint" in message


@pytest.mark.parametrize("name", ["model.pt", "model.keras"])
def test_a_torch_checkpoint_is_refused(tmp_path, untrained, name):
    checkpoint = tmp_path / name
    with zipfile.ZipFile(checkpoint, "w") as archive:  # the layout torch.save writes
        archive.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("model/version", b"3\n")
    with pytest.raises(ModelError, match="written by the PyTorch backend"):
        untrained.load_checkpoint(checkpoint)


@pytest.mark.slow
def test_a_checkpoint_with_other_options_names_them(checkpoint):
    wider = build(options={**OPTIONS, "hg_module": {"filters": 16, "batchnormalization": True}})
    with pytest.raises(ModelError, match="training.model.options differ"):
        wider.load_checkpoint(checkpoint)


def test_a_missing_checkpoint(tmp_path, untrained):
    with pytest.raises(ModelError, match="does not exist"):
        untrained.load_checkpoint(tmp_path / "nothing.keras")
