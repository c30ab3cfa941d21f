import json
import re
from pathlib import Path

import attrs
import pytest

from tests.helpers import REPOSITORY, write_file
from unmix.core.config.loader import inert_keys_set, load_configuration
from unmix.core.config.schema import Configuration, inert_keys
from unmix.core.errors import ConfigurationError

MASTER = """{
    // the root of every chain in these tests
    "environment": {"name": "master"},
    "collection": {"sample_rate": 22050, "song_limit": 0, "folders": [{"path": "a", "ratio": 1}]},
    "training": {"batch_size": 8, "metrics": ["mean_pred", "max_pred"],
                 "model": {"name": "hourglass", "options": {"stacks": 4, "hg_module": {"filters": 256}}}}
}"""




@pytest.fixture
def tree(unmix_free_folder: Path) -> Path:
    write_file(unmix_free_folder, "master.jsonc", MASTER)
    return unmix_free_folder


def test_file_without_base_inherits_master(tree: Path):
    child = write_file(tree, "child.jsonc", '{"training": {"batch_size": 4}}')
    loaded = load_configuration(child, environment={})
    assert [p.name for p in loaded.chain] == ["master.jsonc", "child.jsonc"]
    assert loaded.settings.training.batch_size == 4
    assert loaded.settings.environment.name == "master"
    assert loaded.settings.collection.validation_ratio == 0.2  # schema default for keys nobody set


def test_inheritance_chain_merges_recursively_and_replaces_lists(tree: Path):
    write_file(tree, "parent.jsonc",
               '{"training": {"model": {"options": {"stacks": 6}}}, "collection": {"stereo": true}}')
    child = write_file(
        tree,
        "sub/child.jsonc",
        """{"base": "../parent.jsonc",
            "training": {"metrics": ["max_pred"], "model": {"options": {"hg_module": {"dropoutfactor": 0.2}}}},
            "collection": {"folders": [{"path": "b", "ratio": 3}, {"path": "c", "ratio": 1}]}}""",
    )
    loaded = load_configuration(child, environment={})
    assert [p.name for p in loaded.chain] == ["master.jsonc", "parent.jsonc", "child.jsonc"]
    settings = loaded.settings
    assert settings.training.metrics == ["max_pred"]
    assert settings.training.model.options == {"stacks": 6, "hg_module": {"filters": 256, "dropoutfactor": 0.2}}
    assert [(f.path, f.ratio) for f in settings.collection.folders] == [("b", 3.0), ("c", 1.0)]
    assert settings.collection.stereo is True
    assert "base" not in loaded.data


def test_base_is_found_beside_the_child_before_the_configurations_root(tree: Path):
    write_file(tree, "configurations/master.jsonc", "{}")
    write_file(tree, "configurations/parent.jsonc", '{"training": {"batch_size": 2}}')
    write_file(tree, "custom/parent.jsonc", '{"training": {"batch_size": 3}}')
    beside = write_file(tree, "custom/child.jsonc", '{"base": "parent.jsonc"}')
    from_root = write_file(tree, "elsewhere/child.jsonc", '{"base": "parent.jsonc"}')
    assert load_configuration(beside, environment={}).settings.training.batch_size == 3
    assert load_configuration(from_root, environment={}).settings.training.batch_size == 2


def test_base_cycle_is_an_error_naming_the_chain(tree: Path):
    write_file(tree, "a.jsonc", '{"base": "b.jsonc"}')
    write_file(tree, "b.jsonc", '{"base": "c.jsonc"}')
    write_file(tree, "c.jsonc", '{"base": "a.jsonc"}')
    with pytest.raises(ConfigurationError) as caught:
        load_configuration(tree / "a.jsonc", environment={})
    message = str(caught.value)
    assert message.startswith("base cycle")
    for name in ("a.jsonc", "b.jsonc", "c.jsonc"):
        assert name in message


def test_missing_base_is_an_error_naming_the_chain(tree: Path):
    write_file(tree, "b.jsonc", '{"base": "nowhere.jsonc"}')
    child = write_file(tree, "a.jsonc", '{"base": "b.jsonc"}')
    with pytest.raises(ConfigurationError) as caught:
        load_configuration(child, environment={})
    message = str(caught.value)
    assert "nowhere.jsonc" in message and "a.jsonc -> " in message and "b.jsonc" in message


def test_env_expressions_are_resolved_in_every_file(tree: Path):
    child = write_file(
        tree,
        "child.jsonc",
        """{"collection": {"song_limit": "int(env('UNMIX_SONG_LIMIT'))", "folder": "env('UNMIX_COLLECTION_DIR')",
                           "stereo": "str2bool(env('STEREO', 'false'))",
                           "validation_ratio": "float(env('R', 0.25))"}}""",
    )
    settings = load_configuration(
        child, environment={"UNMIX_SONG_LIMIT": "131", "UNMIX_COLLECTION_DIR": "/data/guitar"}
    ).settings
    assert settings.collection.song_limit == 131
    assert settings.collection.folder == "/data/guitar"
    assert settings.collection.stereo is False
    assert settings.collection.validation_ratio == 0.25


def test_missing_variable_names_key_file_and_variable(tree: Path):
    child = write_file(tree, "child.jsonc",
                       '{"collection": {"test_data_count": "int(env(\'UNMIX_TEST_DATA_COUNT\'))"}}')
    with pytest.raises(ConfigurationError) as caught:
        load_configuration(child, environment={})
    message = str(caught.value)
    assert "child.jsonc" in message
    assert "collection.test_data_count" in message
    assert "UNMIX_TEST_DATA_COUNT" in message


def test_dotenv_is_read_and_real_environment_wins(tree: Path, monkeypatch: pytest.MonkeyPatch):
    write_file(tree, ".env", "UNMIX_SONG_LIMIT=5\nUNMIX_TEST_DATA_COUNT=3\n")
    child = write_file(
        tree,
        "child.jsonc",
        """{"collection": {"song_limit": "int(env('UNMIX_SONG_LIMIT'))",
                           "test_data_count": "int(env('UNMIX_TEST_DATA_COUNT'))"}}""",
    )
    monkeypatch.setenv("UNMIX_SONG_LIMIT", "40")
    settings = load_configuration(child).settings
    assert settings.collection.song_limit == 40  # real variable beats .env
    assert settings.collection.test_data_count == 3  # only in .env


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('{"training": {"batch_sise": 4}}', "training.batch_sise", "did you mean 'batch_size'"),
        ('{"trainig": {}}', "trainig", "did you mean 'training'"),
        ('{"training": {"batch_size": "four"}}', "training.batch_size", "expected a whole number"),
        ('{"training": {"batch_size": 2.5}}', "training.batch_size", "expected a whole number"),
        ('{"collection": {"stereo": "sometimes"}}', "collection.stereo", "expected true or false"),
        ('{"training": {"metrics": "mean_pred"}}', "training.metrics", "expected a list"),
        ('{"training": {"epoch": 3}}', "training.epoch", "expected an object"),
        ('{"training": {"batch_size": 0}}', "training.batch_size", "at least 1"),
        ('{"collection": {"validation_ratio": 1.0}}', "collection.validation_ratio", "below 1.0"),
        ('{"transformation": {"options": {"normalizer": "zscore"}}}', "transformation.options.normalizer",
         "choose one of"),
        ('{"spectrogram_generation": {"fft_length": 1535}}', "spectrogram_generation.fft_length", "must be even"),
        ('{"collection": {"folders": [{"path": "a", "ratio": -1}]}}', "collection.folders[0].ratio", "at least 0"),
    ],
)
def test_validation_errors_name_the_dotted_key_and_the_file(tree: Path, body: str, key: str, fragment: str):
    child = write_file(tree, "child.jsonc", body)
    with pytest.raises(ConfigurationError) as caught:
        load_configuration(child, environment={})
    message = str(caught.value)
    assert message.startswith(f"{child}: {key}: "), message
    assert fragment in message


def test_validation_error_names_the_parent_file_that_set_the_value(tree: Path):
    write_file(tree, "parent.jsonc", '{"training": {"batch_size": -3}}')
    child = write_file(tree, "child.jsonc", '{"base": "parent.jsonc", "training": {"verbose": 0}}')
    with pytest.raises(ConfigurationError) as caught:
        load_configuration(child, environment={})
    assert str(caught.value).startswith(f"{tree / 'parent.jsonc'}: training.batch_size")


def test_numeric_strings_load_as_the_seed_loader_read_them(tree: Path):
    child = write_file(tree, "child.jsonc", '{"training": {"batch_size": "12", "optimizer": {"lr": "0.001"}}}')
    settings = load_configuration(child, environment={}).settings
    assert settings.training.batch_size == 12
    assert settings.training.optimizer.lr == 0.001


def test_missing_and_invalid_files(tree: Path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_configuration(tree / "absent.jsonc", environment={})
    broken = write_file(tree, "broken.jsonc", '{"training": {\n "batch_size": 4,,\n}}')
    with pytest.raises(ConfigurationError, match=r"broken.jsonc: invalid jsonc \(line 2"):
        load_configuration(broken, environment={})
    array = write_file(tree, "array.jsonc", "[1, 2]")
    with pytest.raises(ConfigurationError, match="must be a JSON object"):
        load_configuration(array, environment={})


def test_run_folder_configuration_loads_without_inheritance(tree: Path):
    merged = load_configuration(write_file(tree, "child.jsonc", '{"training": {"batch_size": 4}}'), environment={})
    saved = write_file(tree, "run/configuration.jsonc", json.dumps(merged.data))
    write_file(tree, "master.jsonc", '{"training": {"batch_size": 99}}')  # a later change to the shipped master
    reloaded = load_configuration(saved, environment={}, inherit=False)
    assert reloaded.chain == [saved]
    assert reloaded.settings == merged.settings


def test_inert_keys_set_names_the_file_that_set_each_one(tree: Path):
    write_file(tree, "master.jsonc", '{"environment": {"temp_folder": "tmp"}, "training": {"verbose": 0}}')
    child = write_file(tree, "child.jsonc", '{"training": {"verbose": 2, "batch_size": 4, '
                                       '"callbacks": {"csv_logger": {"append": false}}}}')
    loaded = load_configuration(child, environment={})
    # A master.jsonc that is not the shipped one is the user's, so its inert keys count too.
    assert inert_keys_set(loaded) == [(tree / "master.jsonc", "environment.temp_folder"),
                                      (child, "training.verbose"),
                                      (child, "training.callbacks.csv_logger.append")]


def test_the_inert_keys_of_the_shipped_master_are_not_reported():
    loaded = load_configuration(REPOSITORY / "configurations" / "master.jsonc", environment={})
    assert loaded.provenance["training.callbacks.tensorboard.histogram_freq"] == loaded.path
    assert inert_keys_set(loaded) == []


def documented_inert_keys() -> list[str]:
    """The keys listed in the README's "Inert keys" item of its Configurations section."""
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configurations\n", 1)[1].split("\n## ", 1)[0]
    item = section.split("\n- Inert keys:", 1)[1].split("\n- ", 1)[0]
    sections = {field.name for field in attrs.fields(Configuration)}
    keys = re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", item)
    return [key for key in keys if key.split(".")[0] in sections and key not in ("environment.name", "collection.name")]


def test_the_inert_keys_are_the_documented_ones():
    # Marking a key inert, or un-marking one that unmix starts to read, must update the README's list.
    documented = documented_inert_keys()
    assert len(documented) == len(set(documented))
    assert sorted(documented) == sorted(inert_keys())
    assert all(reason.strip() for reason in inert_keys().values())


def test_the_readmes_time_budget_example_loads_as_it_says(tmp_path: Path):
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n### Training for a time budget\n", 1)[1]
    example = section.split("```jsonc\n", 1)[1].split("```", 1)[0]
    path = write_file(tmp_path, "budget.jsonc", example)
    training = load_configuration(path, environment={}).settings.training
    assert training.model.name == "band-hourglass"
    assert training.time_limit_minutes == 30
    assert training.callbacks.cosine_learningrate.enabled
    assert not training.callbacks.reduce_learningrate.enabled
