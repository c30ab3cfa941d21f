import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import CONFIGURATIONS, assert_one_line_error, clean_environment, run_unmix
from tests.plugin_fixtures import install_plugin_distribution

# Every case runs the real `unmix` command in a subprocess (about a second each); the fast subset skips them.
pytestmark = pytest.mark.slow

TONE_PLUGIN = """
    from unmix.core.hookspecs import hookimpl

    class ToneModel:
        pass

    @hookimpl
    def register_models(register):
        register("numpy:tone", ToneModel)

    @hookimpl
    def register_commands(cli):
        @cli.command()
        def hello():
            '''Say hello from a plugin.'''
            print("hello from the tone plugin")
"""


def with_plugins(tmp_path: Path) -> dict[str, str]:
    site = install_plugin_distribution(
        tmp_path / "site",
        "unmix-tone",
        "2.0.0",
        modules={"unmix_tone_plugin": TONE_PLUGIN, "unmix_broken_plugin": "import not_a_real_module\n"},
        entry_points={"tone": "unmix_tone_plugin", "broken": "unmix_broken_plugin"},
    )
    return clean_environment(PYTHONPATH=str(site))


def test_help_lists_commands_and_loads_no_framework():
    result = run_unmix("--help")
    assert result.returncode == 0
    for command in ("config", "plugins"):
        assert command in result.stdout
    probe = (
        "import sys\n"
        "from unmix.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'torch', 'keras', 'lark'})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=clean_environment())
    assert "HEAVY []" in imported.stderr, imported.stderr


def test_version_names_the_installed_packages():
    result = run_unmix("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("unmix ")
    assert "unmix-core" in result.stdout and "unmix-cli" in result.stdout


def test_plugins_lists_entry_point_plugins_and_reports_a_broken_one(tmp_path):
    environment = with_plugins(tmp_path)
    result = run_unmix("plugins", "--json", env=environment)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    tone = next(plugin for plugin in listing["plugins"] if plugin["name"] == "tone")
    assert tone["distribution"] == "unmix-tone" and tone["version"] == "2.0.0"
    assert tone["registers"] == {"models": ["numpy:tone"]}
    assert tone["commands"] == ["hello"]
    assert any("'broken'" in failure and "not_a_real_module" in failure for failure in listing["failures"])
    assert "plugin 'broken'" in result.stderr  # also warned once on stderr

    text = run_unmix("plugins", env=environment)
    assert "tone (unmix-tone 2.0.0)" in text.stdout
    assert "models: numpy:tone" in text.stdout
    assert "commands: hello" in text.stdout


def test_a_plugin_can_add_a_command(tmp_path):
    result = run_unmix("hello", env=with_plugins(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from the tone plugin"


def test_config_show_prints_the_merged_validated_configuration():
    result = run_unmix("config", "show", str(CONFIGURATIONS / "splitstrument" / "guitar_full.jsonc"))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["collection"]["sample_rate"] == 22050
    assert shown["training"]["model"]["options"]["stacks"] == 6
    assert shown["training"]["model"]["options"]["hg_module"]["filters"] == 192
    assert shown["training"]["batch_size"] == 4


def test_every_shipped_configuration_checks():
    files = sorted(str(path) for path in CONFIGURATIONS.rglob("*.jsonc"))
    assert len(files) >= 30
    result = run_unmix("config", "check", *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == len(files)


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def test_bad_configurations_get_one_line_and_exit_code_2(tmp_path):
    write(tmp_path, "master.jsonc", "{}")
    cases = [
        (str(tmp_path / "missing.jsonc"), ["missing.jsonc", "does not exist"]),
        (
            write(tmp_path, "syntax.jsonc", '{\n  "training": {"batch_size": 4\n'),
            ["syntax.jsonc", "line 2", "unexpected end of file"],
        ),
        (write(tmp_path, "cycle.jsonc", '{"base": "cycle.jsonc"}'), ["base cycle", "cycle.jsonc"]),
        (
            write(tmp_path, "variable.jsonc", '{"collection": {"song_limit": "int(env(\'UNMIX_SONG_LIMIT\'))"}}'),
            ["variable.jsonc", "collection.song_limit", "UNMIX_SONG_LIMIT"],
        ),
        (write(tmp_path, "unknown.jsonc", '{"training": {"bach_size": 4}}'), ["training.bach_size", "batch_size"]),
        (write(tmp_path, "type.jsonc", '{"collection": {"stereo": 2}}'), ["type.jsonc", "collection.stereo"]),
    ]
    for path, fragments in cases:
        for command in ("show", "check"):
            assert_one_line_error(run_unmix("config", command, path, cwd=tmp_path), *fragments)


def test_unknown_plugin_name_lists_the_known_ones(tmp_path):
    write(tmp_path, "master.jsonc", "{}")
    path = write(tmp_path, "model.jsonc", '{"training": {"backend": "numpy", "model": {"name": "tome"}}}')
    result = run_unmix("config", "check", path, cwd=tmp_path, env=with_plugins(tmp_path))
    assert_one_line_error(result, "training.model.name", "unknown model 'numpy:tome'", "did you mean 'numpy:tone'",
                          "numpy:tone [tone]")


TENSORFLOW_START_UP = ("oneDNN custom operations", "cpu_feature_guard", "This TensorFlow binary is optimized",
                       "absl::InitializeLog")


def test_tensorflow_start_up_lines_show_only_when_asked(tmp_path):
    from tests.training_fixtures import write_configuration, write_seed_collection

    collection = write_seed_collection(tmp_path / "collection", songs=3, seconds=1.0)
    configuration = write_configuration(tmp_path / "tiny.jsonc", collection, "hourglass", epochs=1,
                                        backend="tensorflow", stacks=1, hg_module={"filters": 4})
    environment = {key: value for key, value in clean_environment().items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = run_unmix("train", str(configuration), "--workingdir", str(tmp_path / "quiet"), env=environment,
                      timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if any(noise in line for noise in TENSORFLOW_START_UP)]
    debugged = run_unmix("train", str(configuration), "--workingdir", str(tmp_path / "debug"),
                         env={**environment, "UNMIX_DEBUG": "1"}, timeout=300)
    assert debugged.returncode == 0, debugged.stderr
    # The lines exist, so the quiet run really hid them; which ones TensorFlow prints depends on the CPU.
    assert any(noise in debugged.stderr for noise in TENSORFLOW_START_UP), debugged.stderr


def test_an_unmix_error_shows_its_traceback_only_with_unmix_debug(tmp_path):
    missing = str(tmp_path / "missing.jsonc")
    assert_one_line_error(run_unmix("config", "show", missing), "missing.jsonc")
    debugged = run_unmix("config", "show", missing, env=clean_environment(UNMIX_DEBUG="1"))
    assert debugged.returncode == 2 and "Traceback" in debugged.stderr
    assert debugged.stderr.splitlines()[-1].startswith("unmix: error:")
