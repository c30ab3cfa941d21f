"""The hooks a plugin can implement: one `register_*` hook per kind of thing, and `register_commands`.

Each `register_*` hook receives a `register(name, thing)` callback. Names are what configurations
and CLI options use to pick a thing (`"name": "hourglass"`); they are matched case-insensitively.
A name that two plugins register is used by neither (unmix warns and names both), and a plugin
whose hook raises is skipped entirely, so keep hooks to registering: import heavy libraries inside
what you register, not in the hook. See docs/plugins.md for a minimal example of each hook.
"""

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("unmix")
hookimpl = pluggy.HookimplMarker("unmix")

Register = Callable[[str, Any], None]


@hookspec
def register_models(register: Register) -> None:
    """Register model builders, one per backend and network.

    :param register: call `register("<backend>:<name>", builder)`, e.g.
        `register("tensorflow:hourglass", builder)`. A configuration picks it with
        `training.backend` and `training.model.name`. `builder(settings, input_shape)` gets the
        validated `unmix.core.config.schema.Configuration` and `(bins, frames, channels)`, and
        returns an `unmix.core.interfaces.SeparationModel` (train_epoch, evaluate, predict,
        learning_rate, save_checkpoint, load_checkpoint, ...); a model class whose constructor
        takes those two arguments is such a builder.
    """


@hookspec
def register_transforms(register: Register) -> None:
    """Register transforms that turn STFT windows into model inputs and targets, and model outputs back.

    :param register: call `register(name, transform_class)`, where `transform_class` subclasses
        `unmix.core.data.transforms.Transform`; a configuration picks it with `transformation.name`.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset layouts: how a folder of song folders maps to tracks with stems.

    :param register: call `register(name, layout)`, where `layout.find_tracks(folder, target)`
        returns `unmix.core.data.tracks.Track`s; a configuration picks it with `collection.dataset`
        (`"auto"` tries every registered layout).
    """


@hookspec
def register_mixers(register: Register) -> None:
    """Register mixers that combine one or more datasets into training, validation and test songs.

    :param register: call `register(name, mixer)`, where
        `mixer.mix(shares, *, song_limit, validation_ratio, test_data_count)` returns an
        `unmix.core.data.collection.Split`.
    """


@hookspec
def register_sources(register: Register) -> None:
    """Register sources that turn what the user typed (a file, a folder, a link, any URI) into songs.

    :param register: call `register(name, source)`, where `source.matches(uri)` says whether it
        understands `uri` and `source.songs(uri, temp_folder)` returns
        `unmix.core.interfaces.SongInput`s (`unmix.core.interfaces.Source`).
    """


@hookspec
def register_exporters(register: Register) -> None:
    """Register stem writers by format name (wav, flac, mp3, ...).

    :param register: call `register(format_name, exporter)`, where `exporter` has `name`,
        `extension` and `open(path, sample_rate, channels, options)` returning an
        `unmix.core.interfaces.StemWriter` (write, close, abort); `unmix predict --format` and
        `prediction.format` pick it.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the `unmix` command line.

    :param cli: the `unmix` click group; add commands with `@cli.command()` or `cli.add_command(...)`
        inside the hook. A command name unmix already has is not replaced; one that two plugins
        add is used by neither.
    """
