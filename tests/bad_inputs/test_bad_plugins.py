"""Bad-input catalogue: broken, clashing and disabled plugins, and Ctrl-C.

A third-party plugin's failure must cost the user that plugin only: every other command keeps
working, the culprit is named in one line, and no output is left half-written.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.bad_inputs.catalogue import (
    assert_clean_failure,
    assert_untouched,
    clean_environment,
    leftovers,
    run_unmix,
    snapshot,
    write_tone,
)
from tests.helpers import CONFIGURATIONS, ctrl_c_reaches_the_child, unmix_executable
from tests.plugin_fixtures import install_plugin_distribution

# Trains a run and runs the real `unmix` command on it; the fast subset skips this module.
pytestmark = pytest.mark.slow

OGG_CLASH = """
    from unmix.core.hookspecs import hookimpl

    class Writer:
        name, extension = "ogg", "ogg"

    @hookimpl
    def register_exporters(register):
        register("ogg", Writer())
        register("fancy", Writer())
"""

SHARED_COMMAND = """
    import click
    from unmix.core.hookspecs import hookimpl

    @hookimpl
    def register_commands(cli):
        @cli.command()
        def hello():
            click.echo("hello")
"""

RAISING_HOOK = """
    from unmix.core.hookspecs import hookimpl

    @hookimpl
    def register_sources(register):
        register("half", object())

    @hookimpl
    def register_models(register):
        raise RuntimeError("no GPU here")
"""

BROKEN_SOURCE = """
    from unmix.core.hookspecs import hookimpl

    class BrokenSource:
        name = "myscheme"

        def matches(self, uri):
            return uri.startswith("myscheme://")

        def songs(self, uri, temp_folder):
            raise ConnectionError("the myscheme server hung up")

    @hookimpl
    def register_sources(register):
        register("myscheme", BrokenSource())
"""

# A writer that keeps its bytes in a hidden .part file until close(), as the built-in ones do;
# write() fails once it has written a block, or sleeps once it has started (to be interrupted).
PLUGIN_WRITER = """
    import os
    import time
    from pathlib import Path

    from unmix.core.hookspecs import hookimpl

    class RawWriter:
        def __init__(self, path, behaviour):
            self.path, self.behaviour = path, behaviour
            self.partial = path.with_name(f".{path.name}.part")
            self.handle = self.partial.open("wb")

        def write(self, block):
            self.handle.write(block.tobytes())
            self.handle.flush()
            if self.behaviour == "fail":
                raise OSError(28, "the plugin's disk is full")
            if self.behaviour == "slow":
                Path(os.environ["WRITER_STARTED"]).touch()
                time.sleep(60)

        def close(self):
            self.handle.close()
            self.partial.replace(self.path)

        def abort(self):
            self.handle.close()
            self.partial.unlink(missing_ok=True)

    class Raw:
        extension = "raw"

        def __init__(self, name):
            self.name = name

        def open(self, path, sample_rate, channels, options, *, song, stem, stems):
            return RawWriter(path, self.name.removeprefix("raw-"))

    @hookimpl
    def register_exporters(register):
        register("raw-fail", Raw("raw-fail"))
        register("raw-slow", Raw("raw-slow"))
"""


def with_plugins(site: Path, **plugins: str) -> dict[str, str]:
    """An environment whose `unmix` finds each plugin (entry-point name -> source) in its own distribution."""
    folders = []
    for name, source in plugins.items():
        module = f"unmix_{name.replace('-', '_')}_plugin"
        folders.append(str(install_plugin_distribution(site / name, f"unmix-{name}", "1.0", {module: source},
                                                       {name: module})))
    return clean_environment(PYTHONPATH=":".join(folders))


@pytest.fixture(scope="module")
def trained(gain_run: Path, gain_environment: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A tiny trained run of the gain test model, and an environment with its plugin plus PLUGIN_WRITER.

    This module's own `trained` (the catalogue's conftest.py has a mask-0.5 one): these cases need the writer too.
    """
    writer = install_plugin_distribution(tmp_path_factory.mktemp("writer"), "unmix-raw-writer", "1.0",
                                         {"unmix_raw_writer": PLUGIN_WRITER}, {"raw-writer": "unmix_raw_writer"})
    return gain_run, {**gain_environment, "PYTHONPATH": f"{gain_environment['PYTHONPATH']}:{writer}"}


def warnings_of(result: subprocess.CompletedProcess[str], about: str) -> list[str]:
    """The warnings that mention `about` (a plugin or a variable), whatever else the environment warns of."""
    return [line for line in result.stderr.splitlines() if line.startswith("unmix: warning:") and about in line]


def test_a_name_two_plugins_register_is_disabled_and_the_rest_works(trained, tmp_path):
    run, trained_environment = trained
    environment = with_plugins(tmp_path / "site", **{"ogg-clash": OGG_CLASH})
    environment["PYTHONPATH"] += f":{trained_environment['PYTHONPATH']}"

    checked = run_unmix("config", "check", str(CONFIGURATIONS / "quickstart.jsonc"), env=environment)
    assert checked.returncode == 0, checked.stderr
    (warning,) = warnings_of(checked, "'ogg-clash'")
    assert "exporter name 'ogg'" in warning and "'sources'" in warning and "'ogg-clash'" in warning
    assert "UNMIX_DISABLE_PLUGINS=ogg-clash" in warning

    listed = run_unmix("plugins", "--json", env=environment)
    assert listed.returncode == 0, listed.stderr
    listing = json.loads(listed.stdout)
    assert any("exporter name 'ogg'" in conflict for conflict in listing["conflicts"])
    clash = next(plugin for plugin in listing["plugins"] if plugin["name"] == "ogg-clash")
    assert clash["registers"] == {"exporters": ["fancy"]}

    song = write_tone(tmp_path / "songs" / "song.wav")
    before = snapshot(tmp_path / "songs")
    used = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--format", "ogg",
                     "--output", str(tmp_path / "songs"), env=environment)
    assert_clean_failure(used, "exporter name 'ogg'", "'ogg-clash'", "neither is used")
    assert_untouched(before, tmp_path / "songs")
    assert sorted(path.name for path in (tmp_path / "songs").iterdir()) == ["song.wav"]


def test_a_command_two_plugins_add_is_disabled_with_a_reason(tmp_path):
    environment = with_plugins(tmp_path / "site", **{"hello-one": SHARED_COMMAND, "hello-two": SHARED_COMMAND})
    result = run_unmix("hello", env=environment)
    assert_clean_failure(result, "command 'hello'", "'hello-one'", "'hello-two'")
    assert run_unmix("plugins", env=environment).returncode == 0


def test_a_plugin_that_fails_to_import_is_skipped_with_one_warning(tmp_path):
    environment = with_plugins(tmp_path / "site", broken="import not_a_real_module\n")
    result = run_unmix("plugins", env=environment)
    assert result.returncode == 0, result.stderr
    (warning,) = warnings_of(result, "'broken'")
    assert "plugin 'broken' (from distribution unmix-broken) failed to import" in warning
    assert "not_a_real_module" in warning and "Traceback" not in result.stderr


def test_a_plugin_whose_hook_raises_is_skipped_entirely(tmp_path):
    environment = with_plugins(tmp_path / "site", raising=RAISING_HOOK)
    result = run_unmix("plugins", "--json", env=environment)
    assert result.returncode == 0, result.stderr
    (warning,) = warnings_of(result, "'raising'")
    assert "plugin 'raising'" in warning and "register_models" in warning and "no GPU here" in warning
    assert "skipped entirely" in warning
    listing = json.loads(result.stdout)
    assert "raising" not in [plugin["name"] for plugin in listing["plugins"]]
    assert not any("half" in plugin["registers"].get("sources", []) for plugin in listing["plugins"])


def test_disabled_plugins_are_not_loaded(tmp_path):
    environment = with_plugins(tmp_path / "site", broken="import not_a_real_module\n",
                               **{"ogg-clash": OGG_CLASH})
    environment["UNMIX_DISABLE_PLUGINS"] = "broken, ogg-clash"
    result = run_unmix("plugins", "--json", env=environment)
    assert result.returncode == 0, result.stderr
    assert not warnings_of(result, "'broken'") and not warnings_of(result, "'ogg-clash'"), result.stderr
    listing = json.loads(result.stdout)
    assert sorted(listing["disabled"]) == ["broken", "ogg-clash"]
    assert listing["conflicts"] == [] and listing["failures"] == []

    environment["UNMIX_DISABLE_PLUGINS"] = "ogg-clsh"
    (warning,) = warnings_of(run_unmix("plugins", env=environment), "names 'ogg-clsh'")
    assert "UNMIX_DISABLE_PLUGINS names 'ogg-clsh'" in warning


def test_a_source_plugin_that_raises_is_named_in_one_line(trained, tmp_path):
    run, environment = trained
    site = install_plugin_distribution(tmp_path / "site", "unmix-myscheme", "1.0",
                                       {"unmix_myscheme": BROKEN_SOURCE}, {"myscheme": "unmix_myscheme"})
    environment = {**environment, "PYTHONPATH": f"{environment['PYTHONPATH']}:{site}"}
    output = tmp_path / "out"
    result = run_unmix("predict", "--run-folder", str(run), "--song", "myscheme://x", "--output", str(output),
                       env=environment)
    assert_clean_failure(result, "plugin 'myscheme' (from distribution unmix-myscheme) failed in BrokenSource.songs",
                         "ConnectionError: the myscheme server hung up", exit_code=1)
    assert not output.exists() or not any(output.iterdir())

    debugged = run_unmix("predict", "--run-folder", str(run), "--song", "myscheme://x", "--output", str(output),
                         env={**environment, "UNMIX_DEBUG": "1"})
    assert debugged.returncode == 1 and "Traceback" in debugged.stderr


def test_a_writer_plugin_that_raises_leaves_no_partial_stem(trained, tmp_path):
    run, environment = trained
    song = write_tone(tmp_path / "songs" / "song.wav", seconds=3.0)
    output = tmp_path / "out"
    output.mkdir()
    (output / "earlier.wav").write_bytes(b"an earlier result")
    before = snapshot(tmp_path / "songs", output)
    result = run_unmix("predict", "--run-folder", str(run), "--song", str(song), "--output", str(output),
                       "--format", "raw-fail", env=environment)
    assert_clean_failure(result, "plugin 'raw-writer' (from distribution unmix-raw-writer) failed in RawWriter.write",
                         "the plugin's disk is full", exit_code=1)
    assert_untouched(before, tmp_path / "songs", output)
    assert sorted(path.name for path in output.iterdir()) == ["earlier.wav"]


def test_ctrl_c_during_predict_exits_130_and_leaves_nothing_half_written(trained, tmp_path):
    run, environment = trained
    songs = tmp_path / "songs"
    for index in range(3):
        write_tone(songs / f"song{index}.wav", seconds=2.0, frequency=220.0 * (index + 1))
    output = tmp_path / "out"
    started = tmp_path / "writer-started"
    before = snapshot(songs)
    process = subprocess.Popen(
        [unmix_executable(), "predict", "--run-folder", str(run), "--songs", str(songs), "--output", str(output),
         "--format", "raw-slow"],
        env={**environment, "WRITER_STARTED": str(started)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=ctrl_c_reaches_the_child,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), process.communicate(timeout=10)
    process.send_signal(signal.SIGINT)
    # Generous: a loaded machine is slow to unwind, and a writer that ignored Ctrl-C would finish its 60 s
    # sleep within this time and exit 0, which the next line refuses.
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == "unmix: interrupted"
    assert not leftovers(output) and not any(output.iterdir())
    assert_untouched(before, songs)
