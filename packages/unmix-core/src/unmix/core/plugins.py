"""The plugin manager: finds plugins through the `unmix` entry-point group and keeps registries.

Built-in pieces are plugins too: every unmix package declares its own entry point, so the
models, transforms, sources and writers shipped with unmix are found exactly like third-party
ones. One broken plugin must never take unmix down:

- a plugin that fails to import, or whose hook raises, is skipped entirely (all its hooks and
  everything it registered) and recorded in `failures`;
- a name that two plugins register is disabled (neither is used) and recorded in `conflicts`;
  looking it up is an error that says why; every other name keeps working;
- `UNMIX_DISABLE_PLUGINS=name,...` leaves plugins out by entry-point name, so a user can settle
  a conflict or silence a broken plugin without uninstalling anything.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Collection, Iterator
from types import ModuleType, TracebackType
from typing import Any

import attrs
import pluggy

from unmix.core import hookspecs
from unmix.core.errors import PluginError, did_you_mean

ENTRY_POINT_GROUP = "unmix"
DISABLE_VARIABLE = "UNMIX_DISABLE_PLUGINS"
KINDS = ("models", "transforms", "datasets", "mixers", "sources", "exporters", "runtimes")
# unmix's own distributions: an exception in their code is a bug in unmix and keeps its traceback.
BUILTIN_DISTRIBUTIONS = frozenset({"unmix-core", "unmix-cli", "unmix-sources", "unmix-tf", "unmix-torch",
                                   "unmix-onnx"})
_SINGULAR = {
    "models": "model",
    "transforms": "transform",
    "datasets": "dataset",
    "mixers": "mixer",
    "sources": "source",
    "exporters": "exporter",
    "runtimes": "runtime",
}


@attrs.frozen
class PluginInfo:
    """Where a plugin came from: its entry-point name and the distribution that declared it."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None

    def describe(self) -> str:
        """`plugin 'tone' (from distribution unmix-tone)`: how every message names a plugin."""
        origin = f" (from distribution {self.distribution})" if self.distribution else ""
        return f"plugin '{self.name}'{origin}"

    @property
    def is_builtin(self) -> bool:
        return self.distribution in BUILTIN_DISTRIBUTIONS

    def owns_module(self, module: str) -> bool:
        """Whether code in `module` is this plugin's: its own module, or its package and below."""
        package = self.module.rpartition(".")[0] or self.module
        return module == self.module or module == package or module.startswith(f"{package}.")


@attrs.frozen
class PluginFailure:
    """A plugin that could not be imported or whose hook raised, and so was skipped entirely."""

    plugin: str
    distribution: str | None
    error: str

    def describe(self) -> str:
        origin = f" (from distribution {self.distribution})" if self.distribution else ""
        return (f"plugin '{self.plugin}'{origin} {self.error}; it was skipped entirely (none of its hooks, "
                f"names or commands are used); fix or uninstall it, or set {DISABLE_VARIABLE}={self.plugin}")


@attrs.frozen
class Conflict:
    """One name of one kind that several plugins register; none of them gets it."""

    kind: str
    name: str
    plugins: tuple[str, ...]

    def describe(self) -> str:
        owners = " and ".join(f"'{plugin}'" for plugin in self.plugins)
        return (f"{self.kind} name '{self.name}' is registered by plugins {owners}, so neither is used; "
                f"uninstall one, or keep '{self.plugins[0]}' with {DISABLE_VARIABLE}={','.join(self.plugins[1:])}")


@attrs.frozen
class Registration:
    """One named thing and the plugin that registered it."""

    name: str
    thing: Any
    plugin: str


class Registry:
    """The things of one kind, by case-insensitive name; a name registered twice is disabled."""

    def __init__(self, kind: str, builtins: Collection[str] = ()) -> None:
        self.kind = kind
        # unmix's own plugins come first in a conflict, so the advice keeps them and leaves the newcomer out.
        self._builtins = frozenset(builtins)
        self._entries: dict[str, Registration] = {}
        self._disabled: dict[str, Conflict] = {}

    @property
    def conflicts(self) -> list[Conflict]:
        return list(self._disabled.values())

    def add(self, name: str, thing: Any, plugin: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PluginError(f"plugin '{plugin}' registered a {_SINGULAR[self.kind]} without a name")
        key = name.lower()
        if key in self._disabled:
            conflict = self._disabled[key]
            self._disabled[key] = attrs.evolve(conflict, plugins=self._builtins_first(*conflict.plugins, plugin))
            return
        existing = self._entries.pop(key, None)
        if existing is not None:
            self._disabled[key] = Conflict(_SINGULAR[self.kind], name, self._builtins_first(existing.plugin, plugin))
            return
        self._entries[key] = Registration(name=name, thing=thing, plugin=plugin)

    def _builtins_first(self, *plugins: str) -> tuple[str, ...]:
        return tuple(sorted(plugins, key=lambda plugin: plugin not in self._builtins))

    def get(self, name: str) -> Any:
        return self.registration(name).thing

    def registration(self, name: str) -> Registration:
        """The thing registered under `name` and the plugin that registered it; errors as `get` does."""
        key = str(name).lower()
        if key in self._disabled:
            raise PluginError(self._disabled[key].describe())
        registration = self._entries.get(key)
        if registration is None:
            raise PluginError(self._unknown_message(str(name)))
        return registration

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
        hint = did_you_mean(name, (entry.name for entry in self._entries.values()), ignore_case=True)
        known = ", ".join(f"{r.name} [{r.plugin}]" for r in self)
        return f"unknown {singular} '{name}'{hint}; known {self.kind}: {known}"


class _HookFailed(Exception):
    """A plugin's hook raised; the plugin is skipped and the registries are built again without it."""

    def __init__(self, plugin: str, error: str) -> None:
        super().__init__(plugin, error)
        self.plugin = plugin
        self.error = error


class PluginManager:
    """A pluggy manager for the `unmix` hooks, plus the registries built from them."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self._pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        # Entry-point names left out by UNMIX_DISABLE_PLUGINS, and names it gives that match none.
        self.disabled: list[str] = []
        self.unknown_disabled: list[str] = []
        # Commands each plugin added through register_commands, and command names two plugins add.
        self.commands: dict[str, list[str]] = {}
        self.command_conflicts: list[str] = []
        self.disabled_commands: dict[str, str] = {}
        self._registries: dict[str, Registry] | None = None

    def load_entry_points(self, disabled: Collection[str] = ()) -> None:
        """Import every plugin of the `unmix` group except those named in `disabled`."""
        seen: set[tuple[str, str]] = set()
        wanted_off = {name.strip() for name in disabled if name.strip()}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (entry_point.name, entry_point.value) in seen or entry_point.name in self.infos:
                continue
            seen.add((entry_point.name, entry_point.value))
            if entry_point.name in wanted_off:
                self.disabled.append(entry_point.name)
                continue
            dist = getattr(entry_point, "dist", None)
            distribution = dist.name if dist is not None else None
            version = dist.version if dist is not None else None
            try:
                module = entry_point.load()
            except Exception as error:  # a broken plugin must not take the others down
                self.failures.append(
                    PluginFailure(entry_point.name, distribution, f"failed to import: {_describe(error)}"))
                continue
            self.register(module, entry_point.name, distribution=distribution, version=version)
        self.unknown_disabled = sorted(wanted_off - set(self.disabled))

    def register(
        self,
        plugin: ModuleType | object,
        name: str,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Add a plugin object or module directly; tests and embedding applications use this."""
        self._pm.register(plugin, name=name)
        module = getattr(plugin, "__name__", type(plugin).__module__)
        self.infos[name] = PluginInfo(name=name, module=module, distribution=distribution, version=version)
        self._registries = None

    def registry(self, kind: str) -> Registry:
        """The registry of one kind; names registered by two plugins are disabled in it, not errors."""
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; kinds are {', '.join(KINDS)}")
        return self._all_registries()[kind]

    def get(self, kind: str, name: str) -> Any:
        return self.registry(kind).get(name)

    def provider(self, kind: str, name: str) -> PluginInfo:
        """The plugin that registered `name`, with its distribution and version: what a run folder records
        so that the run can be rebuilt with the same code, and a later command can say when it changed."""
        return self.infos[self.registry(kind).registration(name).plugin]

    def settle(self) -> None:
        """Call every registering hook now, so broken plugins and conflicts are known before a command runs."""
        self._all_registries()

    def add_commands(self, cli: Any) -> None:
        """Let each plugin add its commands; a plugin whose hook raises adds none and is skipped."""
        owners: dict[str, str] = {}
        for implementation in self._pm.hook.register_commands.get_hookimpls():
            plugin = implementation.plugin_name
            before = dict(cli.commands)
            try:
                _call(implementation, {"cli": cli})
            except _HookFailed as failed:
                cli.commands.clear()
                cli.commands.update(before)
                self._skip(failed.plugin, failed.error)
                continue
            self.commands[plugin] = self._keep_new_commands(cli, before, plugin, owners)

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin with its version, what it registers and the commands it adds, for `unmix plugins`."""
        registries = self._all_registries()
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
                    "commands": self.commands.get(name, []),
                }
            )
        return described

    def conflicts(self) -> list[str]:
        """Every name disabled because two plugins register it, one sentence each."""
        registries = self._all_registries()
        return [conflict.describe() for kind in KINDS for conflict in registries[kind].conflicts] + list(
            self.command_conflicts)

    def plugin_owning(self, trace: TracebackType | None) -> tuple[PluginInfo, str] | None:
        """The third-party plugin to blame for an exception, and the function it was in.

        The innermost frame that is unmix's or a plugin's decides: if it is a third-party
        plugin's, the plugin failed; if it is unmix's own (core, cli, or a built-in plugin), the
        bug is unmix's and None is returned. Frames of other libraries (numpy, ...) are passed
        over, so a plugin that calls a library wrongly is still the one named.
        """
        blamed = None
        while trace is not None:
            frame = trace.tb_frame
            module = frame.f_globals.get("__name__", "")
            owner = self._owner_of(module)
            if owner is not None:
                code = frame.f_code
                blamed = (owner, getattr(code, "co_qualname", code.co_name))
            elif module == "unmix" or module.startswith("unmix."):
                blamed = None
            trace = trace.tb_next
        return blamed

    def _owner_of(self, module: str) -> PluginInfo | None:
        for info in self.infos.values():
            if not info.is_builtin and info.owns_module(module):
                return info
        return None

    def _keep_new_commands(self, cli: Any, before: dict[str, Any], plugin: str, owners: dict[str, str]) -> list[str]:
        """The commands `plugin` just added; one that takes a name already in use is not kept."""
        added = []
        for name, command in list(cli.commands.items()):
            if before.get(name) is command:
                continue
            if name in self.disabled_commands:
                del cli.commands[name]
            elif name in owners:
                self.command_conflicts.append(
                    f"command '{name}' is added by plugins '{owners[name]}' and '{plugin}', so neither is used; "
                    f"uninstall one, or keep '{owners[name]}' with {DISABLE_VARIABLE}={plugin}")
                self.disabled_commands[name] = self.command_conflicts[-1]
                del cli.commands[name]
                self.commands[owners[name]].remove(name)
            elif name in before:
                self.command_conflicts.append(
                    f"plugin '{plugin}' adds command '{name}', which unmix already has; its command is ignored")
                cli.commands[name] = before[name]
            else:
                owners[name] = plugin
                added.append(name)
        return sorted(added)

    def _all_registries(self) -> dict[str, Registry]:
        while self._registries is None:
            try:
                self._registries = {kind: self._collect(kind) for kind in KINDS}
            except _HookFailed as failed:
                self._skip(failed.plugin, failed.error)
        return self._registries

    def _collect(self, kind: str) -> Registry:
        registry = Registry(kind, builtins=[name for name, info in self.infos.items() if info.is_builtin])
        hook = getattr(self._pm.hook, f"register_{kind}")
        for implementation in hook.get_hookimpls():
            plugin = implementation.plugin_name

            def register(name: str, thing: Any, _plugin: str = plugin) -> None:
                registry.add(name, thing, _plugin)

            _call(implementation, {"register": register})
        return registry

    def _skip(self, plugin: str, error: str) -> None:
        """Take a broken plugin out entirely: its hooks, its registrations and its commands."""
        self._pm.unregister(name=plugin)
        info = self.infos.pop(plugin, None)
        self.commands.pop(plugin, None)
        self.failures.append(PluginFailure(plugin, info.distribution if info else None, error))
        self._registries = None


def _call(implementation: pluggy.HookImpl, arguments: dict[str, Any]) -> None:
    function: Callable[..., Any] = implementation.function
    try:
        function(**{argument: arguments[argument] for argument in implementation.argnames})
    except Exception as error:  # any failure of a plugin's hook, a nameless registration included
        raise _HookFailed(implementation.plugin_name, f"failed in {function.__name__}: {_describe(error)}") from error


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def disabled_plugin_names(environment: dict[str, str] | None = None) -> list[str]:
    """The entry-point names in UNMIX_DISABLE_PLUGINS (comma-separated)."""
    value = (os.environ if environment is None else environment).get(DISABLE_VARIABLE, "")
    return [name.strip() for name in value.split(",") if name.strip()]


_manager: PluginManager | None = None


def plugin_manager() -> PluginManager:
    """The process-wide manager, with every installed plugin not in UNMIX_DISABLE_PLUGINS loaded on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
        _manager.load_entry_points(disabled=disabled_plugin_names())
    return _manager


def get(kind: str, name: str) -> Any:
    """Look up a registered thing by kind and name, e.g. `get("models", "hourglass")`."""
    return plugin_manager().get(kind, name)
