"""Replacing an inherited object with a `key!`, and a model change starting from the new model's defaults.

Both exist because merging key by key is wrong for objects that belong together: a parent model's
options leak into a child that picks another model and then fail that model's validation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, clean_environment, run_unmix, write_file
from unmix.core.config.loader import LoadedConfiguration, load_configuration
from unmix.core.errors import ConfigurationError

MASTER = """{
    "environment": {"name": "master"},
    "training": {"batch_size": 8,
                 "model": {"name": "hourglass",
                           "options": {"stacks": 4, "mixed_precision": true,
                                       "hg_module": {"filters": 256, "dropoutfactor": 0.1}}}}
}"""




@pytest.fixture
def tree(unmix_free_folder: Path) -> Path:
    write_file(unmix_free_folder, "master.jsonc", MASTER)
    return unmix_free_folder


def load(path: Path) -> LoadedConfiguration:
    return load_configuration(path, environment={})


def error_of(path: Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load(path)
    return str(caught.value)


def test_a_bang_key_replaces_the_inherited_object_at_depth(tree: Path):
    child = write_file(tree, "child.jsonc", '{"training": {"model": {"options": {"hg_module!": {"filters": 32}}}}}')
    loaded = load(child)
    options = loaded.settings.training.model.options
    assert options["hg_module"] == {"filters": 32}  # dropoutfactor of the parent is gone
    assert options["stacks"] == 4  # the siblings still merge
    assert "hg_module!" not in json.dumps(loaded.data)


def test_a_replaced_object_names_the_child_for_every_key_and_forgets_the_parents(tree: Path):
    child = write_file(tree, "child.jsonc",
                  '{"training": {"model": {"options!": {"hidden_size": 64, "rnn": {"layers": 2}}}}}')
    loaded = load(child)
    assert loaded.settings.training.model.options == {"hidden_size": 64, "rnn": {"layers": 2}}
    under = {key: file for key, file in loaded.provenance.items() if key.startswith("training.model.options")}
    assert under == {key: child for key in ("training.model.options", "training.model.options.hidden_size",
                                            "training.model.options.rnn", "training.model.options.rnn.layers")}
    assert loaded.provenance["training.model.name"] == tree / "master.jsonc"


def test_a_child_of_the_child_inherits_the_replaced_object_and_merges_into_it(tree: Path):
    write_file(tree, "parent.jsonc", '{"training": {"model": {"options!": {"hidden_size": 64}}}}')
    grandchild = write_file(tree, "grandchild.jsonc",
                       '{"base": "parent.jsonc", "training": {"model": {"options": {"layers": 3}}}}')
    loaded = load(grandchild)
    assert loaded.settings.training.model.options == {"hidden_size": 64, "layers": 3}
    assert loaded.provenance["training.model.options.hidden_size"] == tree / "parent.jsonc"
    assert loaded.provenance["training.model.options.layers"] == grandchild


def test_a_bang_on_a_list_or_a_plain_value_replaces_it_as_without_one(tree: Path):
    child = write_file(tree, "child.jsonc", '{"training": {"batch_size!": 2, "metrics!": ["max_pred"]}}')
    settings = load(child).settings
    assert (settings.training.batch_size, settings.training.metrics) == (2, ["max_pred"])


def test_a_key_written_with_and_without_bang_in_one_object_is_an_error(tree: Path):
    child = write_file(tree, "child.jsonc", '{"training": {"model": {"options": {}, "options!": {"stacks": 1}}}}')
    message = error_of(child)
    assert message.startswith(f"{child}: training.model.options: "), message
    assert '"options" and "options!"' in message and "\n" not in message


@pytest.mark.parametrize("written", ["!", "options!!"])
def test_a_bang_without_one_key_name_before_it_is_an_error(tree: Path, written: str):
    child = write_file(tree, "child.jsonc", f'{{"training": {{"model": {{"{written}": {{}}}}}}}}')
    message = error_of(child)
    assert message.startswith(f"{child}: training.model.{written}: "), message
    assert '"options!"' in message


def test_base_takes_no_bang(tree: Path):
    child = write_file(tree, "child.jsonc", '{"base!": "master.jsonc"}')
    assert error_of(child).startswith(f"{child}: base!: names the parent file")


def test_a_misspelt_bang_key_gets_the_did_you_mean_of_its_plain_name(tree: Path):
    child = write_file(tree, "child.jsonc", '{"trainig!": {"batch_size": 2}}')
    message = error_of(child)
    assert message.startswith(f"{child}: trainig: unknown key"), message
    assert "did you mean 'training'" in message


def test_another_model_drops_the_inherited_options_mixed_precision_included(tree: Path):
    child = write_file(tree, "child.jsonc", '{"training": {"model": {"name": "rnn", "options": {"hidden_size": 64}}}}')
    loaded = load(child)
    assert loaded.settings.training.model.options == {"hidden_size": 64}
    assert loaded.provenance["training.model.options"] == child


def test_another_model_without_options_of_its_own_starts_from_none(tree: Path):
    child = write_file(tree, "child.jsonc", '{"training": {"model": {"name": "unet"}}}')
    loaded = load(child)
    assert loaded.settings.training.model.options == {}
    assert loaded.provenance["training.model.options"] == child


def test_the_same_model_in_another_case_keeps_merging(tree: Path):
    child = write_file(tree, "child.jsonc", '{"training": {"model": {"name": "Hourglass", "options": {"stacks": 2}}}}')
    options = load(child).settings.training.model.options
    assert options == {"stacks": 2, "mixed_precision": True, "hg_module": {"filters": 256, "dropoutfactor": 0.1}}


def test_options_set_without_a_name_belong_to_the_default_model(tree: Path):
    write_file(tree, "master.jsonc", '{"training": {"model": {"options": {"stacks": 4}}}}')
    child = write_file(tree, "child.jsonc", '{"training": {"model": {"name": "rnn"}}}')
    assert load(child).settings.training.model.options == {}


def test_config_show_prints_the_replaced_options(tmp_path: Path):
    write_file(tmp_path, "master.jsonc", MASTER)
    child = write_file(tmp_path, "child.jsonc", '{"training": {"model": {"options!": {"stacks": 1}}}}')
    result = run_unmix("config", "show", str(child), cwd=tmp_path, env=clean_environment())
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    model = shown["training"]["model"]
    assert model["name"] == "hourglass" and model["options"]["stacks"] == 1
    # config show fills in the model's declared defaults: the parent's 0.1 and true are gone, not merged.
    assert model["options"]["hg_module"]["dropoutfactor"] == 0.0 and model["options"]["mixed_precision"] is False


def test_config_show_reports_a_mixed_key_in_one_line(tmp_path: Path):
    write_file(tmp_path, "master.jsonc", MASTER)
    child = write_file(tmp_path, "child.jsonc", '{"training": {"model": {"options": {}, "options!": {}}}}')
    assert_one_line_error(run_unmix("config", "show", str(child), cwd=tmp_path), "child.jsonc",
                          "training.model.options", '"options!"')
