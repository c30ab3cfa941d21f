"""`unmix plugin new`: start a plugin package whose own tests pass as generated.

A new plugin's first hour goes into packaging (the entry-point group, the hook signatures, lazy
imports) and into learning what core will ask of its objects. The template answers both: an
installable package with one working example of its kind and tests written with unmix.testing,
so the author changes working code instead of starting from the documentation. The templates
live in `templates/` beside this module: `common/` for every kind, then one folder per kind;
`package` in a path stands for the module's name, and `$name`-style fields in the files are
filled in with `string.Template`.
"""

from __future__ import annotations

import re
import string
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import attrs
import click

from unmix.core.errors import UnmixError


@attrs.frozen
class Kind:
    """A kind of plugin the template can start: what it registers and what it needs."""

    registry: str
    description: str
    dependencies: tuple[str, ...]
    test_dependencies: tuple[str, ...] = ("pytest",)

    def registered_name(self, name: str) -> str:
        return f"torch:{name}" if self.registry == "models" else name


KINDS = {
    "model": Kind("models", "A PyTorch separation model for unmix, built with unmix.torch.kit",
                  ("unmix-core", "unmix-torch", "torch"), ("pytest", "unmix-sources")),
    "source": Kind("sources", "An unmix song source: a URI that synthesises a sine tone to separate",
                   ("unmix-core", "numpy", "soundfile")),
    "writer": Kind("exporters", "An unmix stem writer: raw float32 samples, one .f32 file per stem",
                   ("unmix-core", "numpy")),
    "dataset": Kind("datasets", "An unmix dataset layout: one folder per song with <target>.wav and rest.wav",
                    ("unmix-core",)),
}
TEMPLATES = "templates"
PACKAGE_PLACEHOLDER = "package"
TEMPLATE_SUFFIX = ".tmpl"
_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*\Z")


@click.group()
def plugin() -> None:
    """Start writing a plugin (`unmix plugins` lists the installed ones)."""


@plugin.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(list(KINDS)), required=True,
              help="What the plugin registers: a model, a song source, a stem writer or a dataset layout.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the new package [default: ./unmix-NAME].")
@click.option("--force", is_flag=True, help="Write into an existing folder, replacing the template's files there.")
def new(name: str, kind: str, output: Path | None, force: bool) -> None:
    """Create the package unmix-NAME: a KIND plugin registered as NAME, with a README and tests.

    NAME is lower case: letters and digits, words joined by - or _ (the module is unmix_NAME).
    The package's tests use unmix.testing and pass as generated:
    `pip install -e 'unmix-NAME[test]' && pytest unmix-NAME`.
    """
    if not _NAME.match(name):
        raise click.UsageError(f"NAME '{name}' is not a valid plugin name: use lower-case letters and digits, "
                               "starting with a letter, words joined by - or _ (e.g. my-model)")
    folder = output if output is not None else Path(f"unmix-{name}")
    written = create_plugin(name, kind, folder, force=force)
    click.echo(f"created unmix-{name}, a {kind} plugin, in {folder} ({len(written)} files)")
    click.echo(f"next: pip install -e '{folder}[test]' && pytest {folder}")


def create_plugin(name: str, kind: str, folder: Path, force: bool = False) -> list[Path]:
    """Write the package for plugin `name` of `kind` into `folder`; returns the files written.

    Refuses (UnmixError) a folder that exists unless `force`, and a name that another installed
    plugin already registers for that kind: the new plugin and the old one would disable each other.
    """
    from unmix.core.plugins import plugin_manager

    chosen = KINDS[kind]
    registered = chosen.registered_name(name)
    registry = plugin_manager().registry(chosen.registry)
    if registered in registry and plugin_manager().provider(chosen.registry, registered).distribution != \
            f"unmix-{name}":
        owner = registry.registration(registered).plugin
        raise UnmixError(f"'{registered}' is already registered by plugin '{owner}'; two plugins that register one "
                         "name disable each other, so choose another NAME")
    if folder.exists() and not force:
        raise UnmixError(f"'{folder}' already exists; choose another --output, or pass --force to write the "
                         "template's files into it")
    module = f"unmix_{name.replace('-', '_')}"
    fields = {
        "name": name,
        "module": module,
        "distribution": f"unmix-{name}",
        "scheme": name.replace("_", "-"),
        "description": chosen.description,
        "dependencies": _toml_list(chosen.dependencies),
        "test_dependencies": _toml_list(chosen.test_dependencies),
    }
    root = files("unmix.cli").joinpath(TEMPLATES)
    written = []
    for template, relative in [*_templates(root.joinpath("common")), *_templates(root.joinpath(kind))]:
        parts = [module if part == PACKAGE_PLACEHOLDER else part for part in relative]
        target = folder.joinpath(*parts[:-1], parts[-1].removesuffix(TEMPLATE_SUFFIX))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(string.Template(template.read_text(encoding="utf-8")).substitute(fields), encoding="utf-8")
        written.append(target)
    return written


def _templates(folder: Traversable, relative: tuple[str, ...] = ()) -> list[tuple[Traversable, tuple[str, ...]]]:
    """Every template file below `folder`, with its path below it, in name order."""
    found = []
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.is_dir():
            found.extend(_templates(entry, (*relative, entry.name)))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            found.append((entry, (*relative, entry.name)))
    return found


def _toml_list(items: tuple[str, ...]) -> str:
    return ", ".join(f'"{item}"' for item in items)
