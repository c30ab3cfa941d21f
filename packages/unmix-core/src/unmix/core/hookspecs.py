"""The hooks a plugin can implement: one `register_*` hook per kind of thing, and `register_commands`.

No hook is deprecated in this version (`HOOKS_VERSION`); a deprecated hook or parameter would be
marked here, with the version that removes it. Added in 1.1: `register_runtimes`.

Each `register_*` hook receives a `register(name, thing)` callback. Names are what configurations
and CLI options use to pick a thing (`"name": "hourglass"`); they are matched case-insensitively.
A name that two plugins register is used by neither (unmix warns and names both), and a plugin
whose hook raises is skipped entirely, so keep hooks to registering: import heavy libraries inside
what you register, not in the hook. See docs/plugins.md for a minimal example of each hook.
"""

from collections.abc import Callable
from typing import Any

import pluggy

# The version of this contract (these hooks and the protocols their things follow), as (major, minor),
# so a plugin can check at import what it is running against instead of failing later on a changed
# signature. A major bump means a hook or protocol changed incompatibly: a plugin written for another
# major version must be updated. A minor bump means something was added (a hook, an optional method or
# argument): a plugin written for an older minor version keeps working, one that uses the addition needs
# at least that minor version. `unmix plugins --json` shows it as "hooks_version".
HOOKS_VERSION = (1, 1)

hookspec = pluggy.HookspecMarker("unmix")
hookimpl = pluggy.HookimplMarker("unmix")

Register = Callable[[str, Any], None]


@hookspec
def register_models(register: Register) -> None:
    """Register models, one per backend and network name.

    :param register: call `register("<backend>:<name>", builder)`. A configuration picks the model
        with `training.backend` and `training.model.name`. The usual way is a backend's model kit,
        which registers a bare network and its declared options and supplies everything else:
        `unmix.torch.kit.register_network(register, "blstm", "my_plugin.network:BLSTM", options=[...])`
        or `unmix.tf.kit.register_network(...)` for Keras. At the lowest level, `builder` is any
        `unmix.core.ModelBuilder`: `builder(settings, input_shape)` gets the validated
        `unmix.core.Configuration` and the window shape `(bins, frames, channels)`, and returns an
        `unmix.core.SeparationModel` (a whole backend: training, checkpoints, prediction). A builder
        may also have `check_options(settings, input_shape)` (run by `unmix config check` before
        any data is decoded) and `declared_options` (listed by `unmix models`).
    """


@hookspec
def register_transforms(register: Register) -> None:
    """Register transforms that turn STFT windows into model inputs and targets, and model outputs back.

    :param register: call `register(name, transform_class)`, where `transform_class` subclasses
        `unmix.core.Transform`; a configuration picks it with `transformation.name`.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset layouts: how a folder of song folders maps to tracks with stems.

    :param register: call `register(name, layout)`, where `layout.find_tracks(folder, target)`
        returns `unmix.core.Track`s; a configuration picks it with `collection.dataset`
        (`"auto"` tries every registered layout).
    """


@hookspec
def register_mixers(register: Register) -> None:
    """Register mixers that combine one or more datasets into training, validation and test songs.

    :param register: call `register(name, mixer)`, where
        `mixer.mix(shares, *, song_limit, validation_ratio, test_data_count)` returns an
        `unmix.core.Split`.
    """


@hookspec
def register_sources(register: Register) -> None:
    """Register sources that turn what the user typed (a file, a folder, a link, any URI) into songs.

    :param register: call `register(name, source)`, where `source.matches(uri)` says whether it
        understands `uri` and `source.songs(uri, temp_folder)` returns
        `unmix.core.SongInput`s (`unmix.core.Source`).
    """


@hookspec
def register_exporters(register: Register) -> None:
    """Register stem writers by format name (wav, flac, mp3, npz, ...); `unmix predict --format` and
    `prediction.format` pick one.

    :param register: call `register(format_name, exporter)`, where `exporter` is an
        `unmix.core.Exporter`: `name`, `extension`, optional `per_song`, and
        `open(path, sample_rate, channels, options, *, song, stem, stems)`, which returns an
        `unmix.core.StemWriter` (one file per stem: write, close, abort) or, with `per_song` true,
        an `unmix.core.SongWriter` (one file holding every stem: write_stems, close, abort). Core
        applies the peak choice (`ExportOptions.peak`) before a writer sees a sample; encoding
        (`bit_depth`, `bitrate_kbps`) is the writer's.
    """


@hookspec
def register_runtimes(register: Register) -> None:
    """Register runtimes that separate with exported model files, without the training framework
    (added in hooks version 1.1).

    :param register: call `register(name, runtime)`, where `runtime` is an `unmix.core.Runtime`:
        `suffix` (the file suffix it reads, ".onnx"), `read_configuration(path)` (the configuration
        the file carries) and `load(path, settings)` (a `SeparationModel` whose `predict` works).
        `unmix predict --model FILE` and `create_engine(FILE)` pick the runtime by FILE's suffix.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the `unmix` command line.

    :param cli: the `unmix` click group; add commands with `@cli.command()` or `cli.add_command(...)`
        inside the hook. A command name unmix already has is not replaced; one that two plugins
        add is used by neither.
    """
