import sys
import types

import pytest

from tests.plugin_fixtures import install_plugin_distribution
from unmix.core.errors import PluginError
from unmix.core.hookspecs import hookimpl
from unmix.core.plugins import PluginManager


def plugin_module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


class Tone:
    """A stand-in model class: registries hold whatever a plugin registers."""


def test_registered_names_resolve_case_insensitively():
    manager = PluginManager()
    manager.register(plugin_module("tones", register_models=lambda register: register("Tone", Tone)), "tones")
    assert manager.get("models", "tone") is Tone
    assert manager.get("models", "TONE") is Tone
    assert manager.registry("models").names() == ["Tone"]


def test_unknown_name_lists_known_names_and_their_plugins():
    manager = PluginManager()
    manager.register(plugin_module("a", register_models=lambda register: register("hourglass", Tone)), "plugin-a")
    manager.register(plugin_module("b", register_models=lambda register: register("unet", Tone)), "plugin-b")
    with pytest.raises(PluginError) as caught:
        manager.get("models", "hourglas")
    message = str(caught.value)
    assert "unknown model 'hourglas'" in message
    assert "did you mean 'hourglass'" in message
    assert "hourglass [plugin-a]" in message and "unet [plugin-b]" in message


def test_one_name_from_two_plugins_is_an_error_naming_both():
    manager = PluginManager()
    manager.register(plugin_module("a", register_sources=lambda register: register("file", Tone)), "first")
    manager.register(plugin_module("b", register_sources=lambda register: register("FILE", Tone)), "second")
    with pytest.raises(PluginError) as caught:
        manager.registry("sources")
    assert "'first'" in str(caught.value) and "'second'" in str(caught.value)
    assert manager.conflicts() == [str(caught.value)]


def test_a_hook_that_raises_is_recorded_and_the_others_still_register():
    def broken(register):
        raise RuntimeError("no GPU here")

    manager = PluginManager()
    manager.register(plugin_module("bad", register_models=broken), "bad-plugin")
    manager.register(plugin_module("good", register_models=lambda register: register("tone", Tone)), "good")
    assert manager.get("models", "tone") is Tone
    assert len(manager.failures) == 1
    assert manager.failures[0].plugin == "bad-plugin"
    assert "no GPU here" in manager.failures[0].describe()


def test_describe_lists_what_each_plugin_registers():
    def register_exporters(register):
        register("wav", Tone)
        register("flac", Tone)

    manager = PluginManager()
    manager.register(plugin_module("w", register_exporters=register_exporters), "writers", "writers-dist", "1.2")
    (described,) = manager.describe()
    assert described["name"] == "writers"
    assert described["distribution"] == "writers-dist" and described["version"] == "1.2"
    assert described["registers"] == {"exporters": ["flac", "wav"]}


def test_entry_points_load_and_a_broken_one_is_reported_by_name(tmp_path, monkeypatch):
    site = install_plugin_distribution(
        tmp_path / "site",
        "unmix-tone-test",
        "0.3.1",
        modules={
            "tone_plugin_ok": """
                from unmix.core.hookspecs import hookimpl

                @hookimpl
                def register_sources(register):
                    register("tone", object)
            """,
            "tone_plugin_broken": "raise ImportError('needs a library that is not installed')\n",
        },
        entry_points={"tone": "tone_plugin_ok", "broken-tone": "tone_plugin_broken"},
    )
    monkeypatch.syspath_prepend(str(site))
    for module in ("tone_plugin_ok", "tone_plugin_broken"):
        sys.modules.pop(module, None)
    manager = PluginManager()
    manager.load_entry_points()
    assert manager.infos["tone"].distribution == "unmix-tone-test"
    assert manager.infos["tone"].version == "0.3.1"
    assert "tone" in manager.registry("sources")
    failures = {failure.plugin: failure for failure in manager.failures}
    assert "broken-tone" in failures
    assert "needs a library that is not installed" in failures["broken-tone"].error
