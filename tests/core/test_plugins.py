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


def test_one_name_from_two_plugins_disables_that_name_only():
    manager = PluginManager()
    manager.register(plugin_module("a", register_sources=lambda register: register("file", Tone)), "first")
    manager.register(plugin_module("b", register_sources=lambda register: (register("FILE", Tone),
                                                                            register("tone", Tone))), "second")
    registry = manager.registry("sources")
    assert registry.names() == ["tone"]
    with pytest.raises(PluginError) as caught:
        manager.get("sources", "file")
    assert "'first'" in str(caught.value) and "'second'" in str(caught.value)
    assert "UNMIX_DISABLE_PLUGINS=second" in str(caught.value)
    assert manager.conflicts() == [str(caught.value)]


def test_every_conflict_is_reported():
    manager = PluginManager()
    both = plugin_module("a", register_models=lambda register: register("tone", Tone),
                         register_exporters=lambda register: register("wav", Tone))
    again = plugin_module("b", register_models=lambda register: register("tone", Tone),
                          register_exporters=lambda register: register("wav", Tone))
    manager.register(both, "first")
    manager.register(again, "second")
    conflicts = manager.conflicts()
    assert len(conflicts) == 2
    assert any("model name 'tone'" in conflict for conflict in conflicts)
    assert any("exporter name 'wav'" in conflict for conflict in conflicts)


def test_a_plugin_whose_hook_raises_is_skipped_entirely():
    def broken(register):
        raise RuntimeError("no GPU here")

    manager = PluginManager()
    bad = plugin_module("bad", register_sources=lambda register: register("bad-source", Tone),
                        register_models=broken)
    manager.register(bad, "bad-plugin")
    manager.register(plugin_module("good", register_models=lambda register: register("tone", Tone)), "good")
    assert manager.get("models", "tone") is Tone
    assert "bad-source" not in manager.registry("sources")
    assert "bad-plugin" not in manager.infos
    (failure,) = manager.failures
    assert failure.plugin == "bad-plugin"
    assert "no GPU here" in failure.describe() and "skipped entirely" in failure.describe()


def test_a_nameless_registration_skips_its_plugin():
    manager = PluginManager()
    manager.register(plugin_module("nameless", register_mixers=lambda register: register("", Tone)), "nameless")
    assert len(manager.registry("mixers")) == 0
    assert "without a name" in manager.failures[0].describe()


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
    assert described["commands"] == []


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


def test_disabled_entry_points_are_not_loaded(tmp_path, monkeypatch):
    site = install_plugin_distribution(
        tmp_path / "site", "unmix-off-test", "1.0",
        modules={"off_plugin": "raise ImportError('must never be imported')\n"},
        entry_points={"off": "off_plugin"},
    )
    monkeypatch.syspath_prepend(str(site))
    manager = PluginManager()
    manager.load_entry_points(disabled=["off", "not-installed"])
    assert manager.disabled == ["off"]
    assert manager.unknown_disabled == ["not-installed"]
    assert not manager.failures and "off" not in manager.infos


def raised_in(module: str, source: str, **names) -> BaseException:
    """Run `source` as code of `module` and return what it raised, traceback included."""
    try:
        exec(compile(source, f"<{module}>", "exec"), {"__name__": module, **names})
    except Exception as error:
        return error
    raise AssertionError(f"{source!r} did not raise")


def fail() -> None:
    raise ValueError("bad")


def test_an_exception_is_blamed_on_the_innermost_third_party_plugin_frame():
    manager = PluginManager()
    manager.register(plugin_module("unmix_blame_test.plugin"), "blame", "unmix-blame-test", "1.0")

    raised = raised_in("unmix_blame_test.models", "raise ValueError('bad')")
    info, function = manager.plugin_owning(raised.__traceback__)
    assert (info.name, info.distribution, function) == ("blame", "unmix-blame-test", "<module>")
    # A library the plugin calls (this test module stands in for numpy) does not take the blame from it.
    assert manager.plugin_owning(raised_in("unmix_blame_test.models", "fail()", fail=fail).__traceback__)
    # unmix's own code deeper than the plugin's: a bug in unmix, which keeps its traceback.
    core = {"__name__": "unmix.core.somewhere"}
    exec("def check():\n    raise ValueError('bad')\n", core)
    assert manager.plugin_owning(raised_in("unmix_blame_test.models", "check()", check=core["check"]).__traceback__) \
        is None


def test_builtin_plugins_are_never_blamed():
    manager = PluginManager()
    manager.register(plugin_module("unmix.sources.plugin"), "sources", "unmix-sources", "0.1.0")
    assert manager.plugin_owning(raised_in("unmix.sources.exporters", "raise ValueError('bad')").__traceback__) is None
