"""Loading a configuration: inheritance through `base`, value expressions, and validation.

A file names its parent with `"base"`; the name is looked up beside the file, then in the
configurations roots (`UNMIX_CONFIGURATIONS_DIR`, `./configurations`, the configurations shipped
with unmix). A file without `base` inherits `master.jsonc`, found the same way, unless it is a
`master.jsonc` itself. Child keys override parent keys recursively; lists are replaced whole.

A key written with a trailing `!` replaces the inherited value whole instead of merging into it:
`"options!": {"hidden_size": 64}` leaves none of the parent's options. The key is stored without the
`!`, at any depth, so validation (and its did-you-mean) sees the plain name; `"!"` alone, `"key!!"`,
`"base!"`, or one object holding both `"key"` and `"key!"` is an error. On a list or a plain value the
`!` changes nothing, as those are replaced anyway. Options belong to one model, so a file that sets
`training.model.name` to another model than the one it inherits (compared case-insensitively)
replaces `training.model.options` as if it wrote `"options!"`, even with no options of its own: the
new model starts from its own defaults, and the inherited `mixed_precision` goes with the rest.

Each file's value expressions (`int(env('UNMIX_SONG_LIMIT'))`) are evaluated before merging, with
the variables of `./.env` underneath the real environment. Every key remembers the file that set
it, so a validation error names the dotted key and that file.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from dotenv import dotenv_values

from unmix.core.config.expressions import ExpressionError, MissingVariableError, evaluate, is_expression
from unmix.core.config.jsonc import load_jsonc
from unmix.core.config.schema import Configuration, Model, inert_keys
from unmix.core.errors import ConfigurationError, PluginError, UnmixError, did_you_mean

MASTER = "master.jsonc"
# Written after a key, replaces the inherited value instead of merging into it.
REPLACE = "!"
MODEL_OPTIONS = "training.model.options"
# Sizes and counts pass through 32-bit integers in the frameworks; anything larger is a typo.
LARGEST_WHOLE_NUMBER = 2**31 - 1
# The longest file or folder name (in bytes) that common file systems (ext4, APFS, NTFS) accept.
LONGEST_FILE_NAME = 255
ROOT_VARIABLE = "UNMIX_CONFIGURATIONS_DIR"


@attrs.frozen
class LoadedConfiguration:
    """A validated configuration and where each of its values came from."""

    path: Path
    chain: list[Path]
    data: dict[str, Any]
    provenance: dict[str, Path]
    settings: Configuration

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".jsonc").removesuffix(".json")


def shipped_configurations_root() -> Path | None:
    """The configurations that come with unmix: inside the wheel, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    candidates = [here / "configurations"] + [parent / "configurations" for parent in here.parents]
    for candidate in candidates:
        if (candidate / MASTER).is_file():
            return candidate
    return None


def configuration_roots(environment: Mapping[str, str]) -> list[Path]:
    roots = []
    if environment.get(ROOT_VARIABLE):
        roots.append(Path(environment[ROOT_VARIABLE]))
    roots.append(Path.cwd() / "configurations")
    shipped = shipped_configurations_root()
    if shipped is not None:
        roots.append(shipped)
    unique: list[Path] = []
    for root in roots:
        if root.is_dir() and root.resolve() not in [r.resolve() for r in unique]:
            unique.append(root)
    return unique


def read_environment(environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """`./.env` underneath the real environment: a variable that is really set always wins."""
    if environment is not None:
        return dict(environment)
    dotenv_file = Path.cwd() / ".env"
    values = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None} if dotenv_file.is_file() else {}
    values.update(os.environ)
    return values


def load_configuration(
    path: str | os.PathLike[str],
    environment: Mapping[str, str] | None = None,
    inherit: bool = True,
) -> LoadedConfiguration:
    """Read, merge and validate a configuration file.

    `inherit=False` reads one already-merged file (a run folder's configuration.jsonc) as it is,
    so that a run keeps the settings it was trained with even if the shipped files change.
    """
    variables = read_environment(environment)
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigurationError(f"configuration file '{path}' {what}; give the path of a .jsonc file")
    files = _resolve_chain(path, variables) if inherit else {path: load_jsonc(path)}
    chain = list(files)
    data: dict[str, Any] = {}
    provenance: dict[str, Path] = {}
    for file, raw in files.items():
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{file}: a configuration must be a JSON object {{...}}, not {type(raw).__name__}")
        raw.pop("base", None)
        replaced: set[str] = set()
        child = _plain_keys(_resolve_expressions(raw, file, variables, ""), file, "", replaced)
        _start_new_model_from_defaults(data, child, replaced)
        _merge(data, child, provenance, file, "", replaced)
    settings = _structure(Configuration, data, "", provenance, path)
    _check_relations(settings, provenance, path)
    return LoadedConfiguration(path=path, chain=chain, data=data, provenance=provenance, settings=settings)


def configuration_from_data(data: dict[str, Any], origin: Path) -> LoadedConfiguration:
    """Validate an already-merged configuration held in memory (an exported model file carries its run's),
    as `load_configuration(..., inherit=False)` validates a run folder's; errors name `origin`."""
    if not isinstance(data, dict):
        raise ConfigurationError(f"{origin}: a configuration must be a JSON object {{...}}, not {type(data).__name__}")
    data = _copy(data)
    provenance: dict[str, Path] = {}
    _record(data, provenance, origin, "")
    settings = _structure(Configuration, data, "", provenance, origin)
    _check_relations(settings, provenance, origin)
    return LoadedConfiguration(path=origin, chain=[origin], data=data, provenance=provenance, settings=settings)


def _resolve_chain(path: Path, environment: Mapping[str, str]) -> dict[Path, Any]:
    """The files from the root ancestor down to `path`, each with its parsed content (read once)."""
    roots = configuration_roots(environment)
    chain = [path]
    contents: dict[Path, Any] = {}
    current = path
    while True:
        raw = contents[current] = load_jsonc(current)
        base = raw.get("base") if isinstance(raw, dict) else None
        if base is None:
            if current.name == MASTER:
                break
            parent = _find(MASTER, current.parent, roots)
            if parent is None:
                break
        else:
            if not isinstance(base, str) or not base.strip():
                raise ConfigurationError(f"{current}: base must be a file name such as \"default-hourglass.jsonc\"")
            parent = _find(base, current.parent, roots)
            if parent is None:
                looked = ", ".join(str(folder) for folder in [current.parent, *roots])
                raise ConfigurationError(
                    f"{current}: base '{base}' not found (looked in {looked}); chain: {_describe_chain(chain)}"
                )
        if parent.resolve() in [file.resolve() for file in chain]:
            raise ConfigurationError(
                f"base cycle: {_describe_chain([parent, *chain])}; remove one of these 'base' keys"
            )
        chain.insert(0, parent)
        current = parent
    return {file: contents[file] for file in chain}


def _find(name: str, folder: Path, roots: list[Path]) -> Path | None:
    for candidate_folder in [folder, *roots]:
        candidate = candidate_folder / name
        if candidate.is_file():
            return candidate
    return None


def _describe_chain(chain: list[Path]) -> str:
    return " -> ".join(str(file) for file in reversed(chain))


def _resolve_expressions(value: Any, file: Path, environment: Mapping[str, str], key: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_expressions(v, file, environment, _join(key, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_expressions(v, file, environment, f"{key}[{i}]") for i, v in enumerate(value)]
    if is_expression(value):
        try:
            return evaluate(value, environment)
        except MissingVariableError as error:
            raise ConfigurationError(
                f"{file}: {key}: environment variable {error.variable} is not set; "
                f"set it (or put it in ./.env) or give env() a default"
            ) from None
        except ExpressionError as error:
            raise ConfigurationError(f"{file}: {key}: {error}") from None
    return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _plain_keys(value: Any, file: Path, key: str, replaced: set[str]) -> Any:
    """`value` with each `name!` key stored as `name`, adding its dotted key to `replaced`.

    Stripping before merging means the merge, the provenance and the schema's did-you-mean only ever
    see plain names, so a typo such as `"trainig!"` is reported as `trainig`.
    """
    if isinstance(value, list):
        return [_plain_keys(v, file, f"{key}[{i}]", replaced) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    plain: dict[str, Any] = {}
    for written, inner in value.items():
        name = _plain_name(written, file, key)
        dotted = _join(key, name)
        if name in plain:
            raise ConfigurationError(f'{file}: {dotted}: written both as "{name}" and "{name}{REPLACE}"; keep one')
        if name != written:
            replaced.add(dotted)
        plain[name] = _plain_keys(inner, file, dotted, replaced)
    return plain


def _plain_name(written: str, file: Path, key: str) -> str:
    """`written` without its `!`, refusing the spellings that name no key or mean something else."""
    name = written.removesuffix(REPLACE)
    is_base = not key and name == "base"
    if name == written or (name and not name.endswith(REPLACE) and not is_base):
        return name
    if is_base:
        problem = 'names the parent file and cannot be replaced; write "base"'
    else:
        problem = f'to replace an inherited value write one "{REPLACE}" right after the key, as in "options{REPLACE}"'
    raise ConfigurationError(f"{file}: {_join(key, written)}: {problem}")


def _start_new_model_from_defaults(data: dict[str, Any], child: dict[str, Any], replaced: set[str]) -> None:
    """A child that picks another model replaces the inherited `training.model.options`.

    Options belong to one model: merged into another model's options they fail its validation, or
    worse, silently mean something else. An empty `options` stands in when the child gives none,
    so its provenance names the file that changed the model.
    """
    model = _object_at(child, "training", "model")
    if model is None or "name" not in model:
        return
    inherited = _object_at(data, "training", "model") or {}
    if str(model["name"]).casefold() != str(inherited.get("name", Model().name)).casefold():
        model.setdefault("options", {})
        replaced.add(MODEL_OPTIONS)


def _object_at(value: Any, *names: str) -> dict[str, Any] | None:
    """The object under the keys `names`, or None where one of them is missing or not an object."""
    for name in names:
        value = value.get(name) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else None


def _merge(target: dict[str, Any], child: dict[str, Any], provenance: dict[str, Path], file: Path, key: str,
           replaced: set[str]) -> None:
    """Merge `child` into `target` key by key, except the dotted keys in `replaced`, which it replaces whole."""
    for name, value in child.items():
        dotted = _join(key, name)
        if isinstance(value, dict) and isinstance(target.get(name), dict) and dotted not in replaced:
            _merge(target[name], value, provenance, file, dotted, replaced)
        else:
            target[name] = _copy(value)
            for known in [k for k in provenance if k.startswith(dotted + ".")]:
                del provenance[known]
            _record(value, provenance, file, dotted)
        provenance.setdefault(dotted, file)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _record(value: Any, provenance: dict[str, Path], file: Path, key: str) -> None:
    provenance[key] = file
    if isinstance(value, dict):
        for name, inner in value.items():
            _record(inner, provenance, file, _join(key, name))


def _source(provenance: Mapping[str, Path], key: str, fallback: Path) -> Path:
    while key:
        if key in provenance:
            return provenance[key]
        key = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key)
    return fallback


def _structure(cls: type, data: Any, key: str, provenance: Mapping[str, Path], path: Path) -> Any:
    """Build attrs class `cls` from `data`, checking keys, types and bounds."""

    def fail(at: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{_source(provenance, at, path)}: {at}: {problem}")

    if not isinstance(data, dict):
        return _raise(fail(key, f"expected an object {{...}}, got {_type_name(data)}"))
    fields = {field.name: field for field in attrs.fields(cls)}
    for name in data:
        if name not in fields:
            known = ", ".join(fields)
            raise fail(_join(key, name), f"unknown key{did_you_mean(name, fields)}; known keys here: {known}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name not in data:
            continue
        dotted = _join(key, name)
        value = _convert(hints[name], data[name], dotted, provenance, path, fail)
        _check_bounds(field, value, dotted, fail)
        values[name] = value
    return cls(**values)


def _raise(error: Exception) -> Any:
    raise error


def _convert(kind: Any, value: Any, key: str, provenance: Mapping[str, Path], path: Path, fail: Any) -> Any:
    origin = typing.get_origin(kind)
    if attrs.has(kind):
        return _structure(kind, value, key, provenance, path)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        problems = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, key, provenance, path, fail)
            except ConfigurationError as error:
                problems.append(error)
        names = " or ".join(_kind_name(o) for o in options)
        raise fail(key, f"expected {names}, got {_type_name(value)} {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise fail(key, f"expected a list [...], got {_type_name(value)} {value!r}")
        (item,) = typing.get_args(kind)
        return [_convert(item, v, f"{key}[{i}]", provenance, path, fail) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(key, f"expected an object {{...}}, got {_type_name(value)} {value!r}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise fail(key, f"expected true or false, got {_type_name(value)} {value!r}")
    if kind is int:
        whole = _whole_number(_number(value))
        if whole is None:
            raise fail(key, f"expected a whole number, got {_type_name(value)} {value!r}")
        if abs(whole) > LARGEST_WHOLE_NUMBER:
            raise fail(key, f"{value!r} is too large; no setting takes a whole number beyond {LARGEST_WHOLE_NUMBER}")
        return whole
    if kind is float:
        number = _number(value)
        if isinstance(number, bool) or number is None:
            raise fail(key, f"expected a number, got {_type_name(value)} {value!r}")
        if not math.isfinite(number):
            raise fail(key, f"expected a finite number, got {value!r}")
        return float(number)
    if kind is str:
        if not isinstance(value, str):
            raise fail(key, f"expected text, got {_type_name(value)} {value!r}")
        return value
    raise TypeError(f"config_schema uses a type the loader does not know: {kind!r} at {key}")


def _number(value: Any) -> int | float | None:
    """Numbers, and numeric strings as the seed's eval-everything loader accepted them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                return float(value.strip())
            except ValueError:
                return None
    return None


def _whole_number(number: int | float | None) -> int | None:
    """`number` as an int when it is a whole, finite number; JSON's 1e400 reads as infinity."""
    if number is None or isinstance(number, bool):
        return None
    if isinstance(number, int):
        return number
    if math.isfinite(number) and number.is_integer():
        return int(number)
    return None


def _check_bounds(field: attrs.Attribute, value: Any, key: str, fail: Any) -> None:
    if value is None:
        return
    metadata = field.metadata
    if metadata.get("choices") is not None and value not in metadata["choices"]:
        choices = ", ".join(repr(c) for c in metadata["choices"])
        raise fail(key, f"{value!r} is not allowed; choose one of {choices}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if metadata.get("minimum") is not None and value < metadata["minimum"]:
        raise fail(key, f"{value!r} is too small; it must be at least {metadata['minimum']}")
    if metadata.get("maximum") is not None and value > metadata["maximum"]:
        raise fail(key, f"{value!r} is too large; it must be at most {metadata['maximum']}")
    if metadata.get("below") is not None and value >= metadata["below"]:
        raise fail(key, f"{value!r} is too large; it must be below {metadata['below']}")


def _check_relations(settings: Configuration, provenance: Mapping[str, Path], path: Path) -> None:
    """Rules that involve more than one key."""

    def fail(key: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{_source(provenance, key, path)}: {key}: {problem}")

    spectrogram = settings.spectrogram_generation
    if spectrogram.fft_length % 2:
        raise fail("spectrogram_generation.fft_length", f"{spectrogram.fft_length} must be even")
    if spectrogram.hop_length is not None and spectrogram.hop_length > spectrogram.fft_length:
        raise fail(
            "spectrogram_generation.hop_length",
            f"{spectrogram.hop_length} is larger than fft_length {spectrogram.fft_length}; frames would leave gaps",
        )
    callbacks = settings.training.callbacks
    if callbacks.cosine_learningrate.enabled and callbacks.reduce_learningrate.enabled:
        raise fail("training.callbacks.cosine_learningrate",
                   "and reduce_learningrate are both enabled, but only one may set the learning rate; disable one")
    augmentation = settings.augmentation
    if augmentation.gain_min > augmentation.gain_max:
        raise fail("augmentation.gain_min", f"{augmentation.gain_min} is above gain_max {augmentation.gain_max}")
    environment = settings.environment
    run_files = {"environment.log_file": environment.log_file,
                 "training.callbacks.csv_logger.file_name": settings.training.callbacks.csv_logger.file_name}
    for key, name in run_files.items():
        problem = _file_name_problem(name)
        if problem:
            raise fail(key, f"{name!r} {problem}")
    for part in Path(environment.output_path).parts:
        if len(part.encode("utf-8")) > LONGEST_FILE_NAME:
            raise fail("environment.output_path", f"the folder name {part[:40]!r}... is longer than "
                       f"{LONGEST_FILE_NAME} bytes, more than file systems allow; shorten it")


def _file_name_problem(name: str) -> str | None:
    """Why `name` cannot be a file inside the run folder, or None when it can."""
    if not name.strip() or name in (".", ".."):
        return "is not a file name; give one such as \"logs.txt\""
    if "/" in name or "\\" in name:
        return "must be a plain file name inside the run folder, without '/' or '\\'"
    if len(name.encode("utf-8")) > LONGEST_FILE_NAME:
        return f"is longer than {LONGEST_FILE_NAME} bytes, more than file systems allow; shorten it"
    return None


def inert_keys_set(loaded: LoadedConfiguration) -> list[tuple[Path, str]]:
    """(file, key) for each inert key (`schema.inert_keys`) a file of the chain sets, in schema order.

    The shipped master.jsonc is left out: it lists every key of the seed with its default, so it
    sets them all, and a user who only inherits it has set none of them.
    """
    shipped = shipped_configurations_root()
    master = (shipped / MASTER).resolve() if shipped is not None else None
    found = []
    for key in inert_keys():
        source = loaded.provenance.get(key)
        if source is not None and source.resolve() != master:
            found.append((source, key))
    return found


BACKEND_PACKAGES = {"tensorflow": "'unmix-tf[cpu]' (or [gpu])", "torch": "unmix-torch"}


def check_plugin_names(loaded: LoadedConfiguration, manager: Any) -> list[str]:
    """Check that every plugin name the configuration uses is registered, and the model's options.

    Run before any data is decoded, so a typo costs a second, not a cache build. A kind with no
    plugin installed at all (no backend on this machine) cannot be checked; that is returned as a
    warning instead of an error, so configurations can be checked anywhere.
    """
    settings = loaded.settings
    names = [
        ("training.model.name", "models", f"{settings.training.backend}:{settings.training.model.name}"),
        ("transformation.name", "transforms", settings.transformation.name),
        ("prediction.format", "exporters", settings.prediction.format),
    ]
    if settings.collection.dataset != "auto":
        names.append(("collection.dataset", "datasets", settings.collection.dataset))
    warnings = []
    found = {}
    for key, kind, name in names:
        registry = manager.registry(kind)
        if len(registry) == 0:
            warnings.append(f"{loaded.path}: {key}: cannot check '{name}': no plugin registers any {kind} here")
            continue
        if kind == "models":
            check_backend_installed(loaded, registry)
        try:
            found[kind] = registry.get(name)
        except PluginError as error:
            raise ConfigurationError(f"{_source(loaded.provenance, key, loaded.path)}: {key}: {error}") from None
    if "models" in found and "transforms" in found:
        _check_model_options(loaded, found["models"], found["transforms"])
    return warnings


def check_backend_installed(loaded: LoadedConfiguration, models: Any) -> None:
    """A configuration for a backend whose package is missing names the package to install."""
    backend = loaded.settings.training.backend
    if not any(name.lower().startswith(f"{backend.lower()}:") for name in models.names()):
        package = BACKEND_PACKAGES.get(backend, f"a plugin for the '{backend}' backend")
        key = "training.backend"
        raise ConfigurationError(f"{_source(loaded.provenance, key, loaded.path)}: {key} '{backend}' has no models "
                                 f"installed; install {package} (see `unmix plugins`)")


def _check_model_options(loaded: LoadedConfiguration, builder: Any, transform_class: Any) -> None:
    """Ask the model's builder to check `training.model.options` against the input it will get, when it can."""
    check_options = getattr(builder, "check_options", None)
    if check_options is None:
        return
    try:
        check_options(loaded.settings, _input_shape(loaded.settings, transform_class))
    except UnmixError as error:
        raise ConfigurationError(f"{_options_source(loaded)}: {error}") from None


def model_options_in_full(loaded: LoadedConfiguration, manager: Any) -> dict[str, Any] | None:
    """`training.model.options` with the model's declared defaults filled in, as the model will read them.

    None when the model or its transform is not installed here, or the model declares no options
    (a model that reads them itself). `unmix config show` prints these, so a user sees every
    option that applies, not only the ones the files set.
    """
    settings = loaded.settings
    models, transforms = manager.registry("models"), manager.registry("transforms")
    model_name = f"{settings.training.backend}:{settings.training.model.name}"
    if model_name not in models or settings.transformation.name not in transforms:
        return None
    read_options = getattr(models.get(model_name), "read_options", None)
    if read_options is None:
        return None
    input_shape = _input_shape(settings, transforms.get(settings.transformation.name))
    try:
        return read_options(settings.training.model.options, input_shape)
    except UnmixError as error:
        raise ConfigurationError(f"{_options_source(loaded)}: {error}") from None


def _input_shape(settings: Configuration, transform_class: Any) -> tuple[int, int, int]:
    """(bins, frames, channels) of the windows the transform will hand the model."""
    bins = settings.spectrogram_generation.fft_length // 2 + 1
    return transform_class.from_configuration(settings).input_shape(bins, settings.channels)


def _options_source(loaded: LoadedConfiguration) -> Path:
    """The last file in the chain that set any model option: the likeliest place of a bad one."""
    key = MODEL_OPTIONS
    setters = {file for dotted, file in loaded.provenance.items() if dotted == key or dotted.startswith(key + ".")}
    return next((file for file in reversed(loaded.chain) if file in setters), loaded.path)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "text", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _kind_name(kind: Any) -> str:
    return {bool: "true/false", int: "a whole number", float: "a number", str: "text"}.get(kind, str(kind))
