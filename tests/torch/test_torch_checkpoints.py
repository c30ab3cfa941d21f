"""`.pt` checkpoints: exact resume with optimiser state, atomic writes, and one clear line for bad files."""

from __future__ import annotations

import zipfile
from unittest import mock

import pytest
import torch

from tests.torch.tiny import NORM_OPTIONS, build, half_gain_batches, ignore, tiny_settings
from unmix.core.errors import ModelError
from unmix.core.files import WriteError


def make(**training):
    return build(tiny_settings(options=NORM_OPTIONS, metrics=["mean_pred", "max_pred"], **training))


def same_state(first, second) -> bool:
    one, two = first.network.state_dict(), second.network.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[name], two[name]) for name in one)


def same_optimizer_state(first, second) -> bool:
    one, two = first.optimizer.state_dict(), second.optimizer.state_dict()
    if one["param_groups"] != two["param_groups"] or one["state"].keys() != two["state"].keys():
        return False
    return all(torch.equal(one["state"][key][name], two["state"][key][name])
               for key in one["state"] for name in one["state"][key])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint of the tiny hourglass (batch norm included) after two steps, and the bytes of it."""
    torch.manual_seed(3)
    model = make()
    model.train_epoch(half_gain_batches(2, seed=11), 2, ignore)
    path = tmp_path_factory.mktemp("saved") / "last.pt"
    model.save_checkpoint(path)
    return model, path.read_bytes()


@pytest.fixture
def checkpoint(tmp_path, saved):
    path = tmp_path / "last.pt"
    path.write_bytes(saved[1])
    return path


def test_load_restores_weights_statistics_optimiser_and_step_count(saved, checkpoint):
    original = saved[0]
    restored = make()
    assert not same_state(original, restored)
    restored.load_checkpoint(checkpoint)
    assert same_state(original, restored)
    assert same_optimizer_state(original, restored)
    assert restored.iterations == original.iterations == 2
    assert restored.learning_rate == original.learning_rate


def test_resuming_continues_exactly_like_an_uninterrupted_run(tmp_path):
    torch.manual_seed(5)
    straight = make()
    torch.manual_seed(5)
    interrupted = make()
    assert same_state(straight, interrupted)
    straight.train_epoch(half_gain_batches(2, seed=1), 2, ignore)
    interrupted.train_epoch(half_gain_batches(2, seed=1), 2, ignore)
    interrupted.save_checkpoint(tmp_path / "last.pt")
    resumed = make()
    resumed.load_checkpoint(tmp_path / "last.pt")
    straight_metrics = straight.train_epoch(half_gain_batches(2, seed=2), 2, ignore)
    resumed_metrics = resumed.train_epoch(half_gain_batches(2, seed=2), 2, ignore)
    assert resumed_metrics == straight_metrics
    assert same_state(straight, resumed) and same_optimizer_state(straight, resumed)
    assert resumed.iterations == 4


def test_saving_is_atomic_and_leaves_no_temporary_file(saved, checkpoint):
    model = saved[0]
    before = checkpoint.read_bytes()
    with mock.patch("torch.save", side_effect=OSError(28, "No space left on device")), \
            pytest.raises(WriteError, match="last.pt"):
        model.save_checkpoint(checkpoint)
    assert checkpoint.read_bytes() == before, "a failed save keeps the previous checkpoint"
    model.save_checkpoint(checkpoint)
    assert sorted(path.name for path in checkpoint.parent.iterdir()) == ["last.pt"]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_a_cut_short_checkpoint_is_one_clear_line(checkpoint, keep):
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelError) as error:
        make().load_checkpoint(checkpoint)
    message = one_line(error)
    assert str(checkpoint) in message and "not a readable PyTorch checkpoint" in message


def test_garbage_and_missing_checkpoints_are_one_clear_line(tmp_path):
    garbage = tmp_path / "best.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ModelError) as error:
        make().load_checkpoint(garbage)
    assert "not a readable PyTorch checkpoint" in one_line(error)
    with pytest.raises(ModelError) as error:
        make().load_checkpoint(tmp_path / "missing.pt")
    assert "does not exist" in one_line(error)


def test_a_torch_file_not_written_by_unmix_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(make().network.state_dict(), path)
    with pytest.raises(ModelError) as error:
        make().load_checkpoint(path)
    assert "was not written by unmix" in one_line(error)


@pytest.mark.parametrize("name", ["best.keras", "renamed.pt"])
def test_a_keras_checkpoint_names_the_other_backend(tmp_path, name):
    """A .keras file is a zip archive too; it is recognised by its entries even under a .pt name."""
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"")
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ModelError) as error:
        make().load_checkpoint(path)
    message = one_line(error)
    assert "written by the Keras backend (unmix-tf)" in message and "training.backend" in message


def test_a_checkpoint_of_other_options_names_what_changed(checkpoint):
    with pytest.raises(ModelError) as error:
        build(tiny_settings(options={**NORM_OPTIONS, "hg_module": {"filters": 16}})).load_checkpoint(checkpoint)
    assert "training.model.options differ" in one_line(error)
    with pytest.raises(ModelError) as error:
        build(tiny_settings(options=NORM_OPTIONS, fft_length=256), (129, 8, 1)).load_checkpoint(checkpoint)
    assert "was trained on windows of (65, 8, 1)" in one_line(error)
