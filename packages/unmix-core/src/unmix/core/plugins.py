"""The plugin manager: finds plugins through the `unmix` entry-point group and keeps registries.

Built-in pieces are plugins too: every unmix package declares its own entry point, so the
models, transforms, sources and writers shipped with unmix are found exactly like third-party
ones. A plugin that fails to import, or whose hook raises, is recorded with its entry-point name
and skipped; the other plugins still load.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import attrs
import pluggy

from unmix.core import hookspecs
from unmix.core.errors import PluginError

ENTRY_POINT_GROUP = "unmix"
KINDS = ("models", "transforms", "datasets", "mixers", "sources", "exporters")
_SINGULAR = {
    "models": "model",
    "transforms": "transform",
    "datasets": "dataset",
    "mixers": "mixer",
    "sources": "source",
    "exporters": "exporter",
}


@attrs.frozen
class PluginInfo:
    """Where a plugin came from: its entry-point name and the distribution that declared it."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None


@attrs.frozen
class PluginFailure:
    """A plugin that could not be imported or whose hook raised."""

    plugin: str
    distribution: str | None
    error: str

    def describe(self) -> str:
        origin = f" (from {self.distribution})" if self.distribution else ""
        return f"plugin '{self.plugin}'{origin} failed and was skipped: {self.error}"


@attrs.frozen
class Registration:
    """One named thing and the plugin that registered it."""

    name: str
    thing: Any
    plugin: str


class Registry:
    """The things of one kind, by case-insensitive name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Registration] = {}
        self.conflicts: list[str] = []

    def add(self, name: str, thing: Any, plugin: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PluginError(f"plugin '{plugin}' registered a {_SINGULAR[self.kind]} without a name")
        key = name.lower()
        existing = self._entries.get(key)
        if existing is not None:
            self.conflicts.append(
                f"{_SINGULAR[self.kind]} name '{name}' is registered by two plugins, "
                f"'{existing.plugin}' and '{plugin}': uninstall or disable one of them"
            )
            return
        self._entries[key] = Registration(name=name, thing=thing, plugin=plugin)

    def get(self, name: str) -> Any:
        registration = self._entries.get(str(name).lower())
        if registration is None:
            raise PluginError(self._unknown_message(str(name)))
        return registration.thing

    def names(self) -> list[str]:
        return [registration.name for registration in self]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[Registration]:
        return iter(sorted(self._entries.values(), key=lambda r: r.name.lower()))

    def __len__(self) -> int:
        return len(self._entries)

    def _unknown_message(self, name: str) -> str:
        singular = _SINGULAR[self.kind]
        if not self._entries:
            return (
                f"unknown {singular} '{name}': no plugin registers any {self.kind}; "
                "install one (see `unmix plugins`)"
            )
        close = difflib.get_close_matches(name.lower(), list(self._entries), n=1)
        hint = f" (did you mean '{self._entries[close[0]].name}'?)" if close else ""
        known = ", ".join(f"{r.name} [{r.plugin}]" for r in self)
        return f"unknown {singular} '{name}'{hint}; known {self.kind}: {known}"


class PluginManager:
    """A pluggy manager for the `unmix` hooks, plus the registries built from them."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self._pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        self._registries: dict[str, Registry] = {}

    def load_entry_points(self) -> None:
        seen: set[tuple[str, str]] = set()
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (entry_point.name, entry_point.value) in seen or entry_point.name in self.infos:
                continue
            seen.add((entry_point.name, entry_point.value))
            dist = getattr(entry_point, "dist", None)
            distribution = dist.name if dist is not None else None
            version = dist.version if dist is not None else None
            try:
                module = entry_point.load()
            except Exception as error:  # a broken plugin must not take the others down
                self.failures.append(PluginFailure(entry_point.name, distribution, _describe(error)))
                continue
            self.register(module, entry_point.name, distribution=distribution, version=version)

    def register(
        self,
        plugin: ModuleType | object,
        name: str,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Add a plugin object or module directly; tests and embedding applications use this."""
        self._pm.register(plugin, name=name)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.infos[name] = PluginInfo(name=name, module=module, distribution=distribution, version=version)
        self._registries.clear()

    def registry(self, kind: str) -> Registry:
        """The registry of one kind; two plugins registering one name is an error naming both."""
        registry = self._build(kind)
        if registry.conflicts:
            raise PluginError(registry.conflicts[0])
        return registry

    def get(self, kind: str, name: str) -> Any:
        return self.registry(kind).get(name)

    def add_commands(self, cli: Any) -> None:
        for implementation in self._pm.hook.register_commands.get_hookimpls():
            self._call(implementation, {"cli": cli})

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin with its version and what it registers, for `unmix plugins`."""
        registries = {kind: self._build(kind) for kind in KINDS}
        described = []
        for name, info in sorted(self.infos.items()):
            registers = {
                kind: [r.name for r in registries[kind] if r.plugin == name]
                for kind in KINDS
            }
            described.append(
                {
                    "name": name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "module": info.module,
                    "registers": {kind: names for kind, names in registers.items() if names},
                }
            )
        return described

    def conflicts(self) -> list[str]:
        return [conflict for kind in KINDS for conflict in self._build(kind).conflicts]

    def _build(self, kind: str) -> Registry:
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; kinds are {', '.join(KINDS)}")
        if kind not in self._registries:
            registry = Registry(kind)
            hook = getattr(self._pm.hook, f"register_{kind}")
            for implementation in hook.get_hookimpls():
                plugin = implementation.plugin_name

                def register(name: str, thing: Any, _plugin: str = plugin) -> None:
                    registry.add(name, thing, _plugin)

                self._call(implementation, {"register": register})
            self._registries[kind] = registry
        return self._registries[kind]

    def _call(self, implementation: pluggy.HookImpl, arguments: dict[str, Any]) -> None:
        function: Callable[..., Any] = implementation.function
        try:
            function(**{argument: arguments[argument] for argument in implementation.argnames})
        except PluginError:
            raise
        except Exception as error:
            info = self.infos.get(implementation.plugin_name)
            self.failures.append(
                PluginFailure(
                    implementation.plugin_name,
                    info.distribution if info else None,
                    f"{function.__name__} raised {_describe(error)}",
                )
            )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


_manager: PluginManager | None = None


def plugin_manager() -> PluginManager:
    """The process-wide manager, with every installed plugin loaded on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
        _manager.load_entry_points()
    return _manager


def get(kind: str, name: str) -> Any:
    """Look up a registered thing by kind and name, e.g. `get("models", "hourglass")`."""
    return plugin_manager().get(kind, name)
