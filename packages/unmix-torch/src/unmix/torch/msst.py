"""`unmix import msst`: a Music-Source-Separation-Training (MSST) RoFormer as an unmix run folder.

MSST (github.com/ZFTurbo/Music-Source-Separation-Training) publishes BS-RoFormer and Mel-RoFormer
checkpoints with a YAML file whose `model:` section holds the network's constructor arguments.
unmix's `torch:bs-roformer` and `torch:mel-roformer` take those keys as their options and name
their weights as MSST does, so importing means: read the YAML, write the configuration that
rebuilds the network in unmix, build it with unmix's own builder, load the MSST weights into it and
save them in unmix-torch's checkpoint format. The result is a run folder like one `unmix train`
leaves, which `unmix predict` and `unmix evaluate` use and `training.initial_weights` fine-tunes from.

Both files come from strangers, and both formats can run code when loaded carelessly: YAML's
`!!python/...` tags construct arbitrary objects, and a PyTorch checkpoint is a pickle. The YAML is
read by PyYAML's SafeLoader, taught only the one tag MSST files use (`!!python/tuple`, read as a
list); any other tag is refused before anything is constructed from it. The checkpoint is read with
`torch.load(weights_only=True)`, which unpickles nothing but tensors and plain containers, and a
file that needs more is refused rather than loaded with less care.

Where MSST and unmix differ:
- `model.stereo` sets `collection.stereo` and `audio.sample_rate` `collection.sample_rate`. MSST
  separates a song in chunks of `audio.chunk_size` samples (or `inference.chunk_size`, which it
  prefers when set) every `chunk_size // inference.num_overlap`: the waveform transformation's
  size and step. `training.lr`, `batch_size` and an Adam or RMSprop `optimizer` carry over, for
  fine-tuning.
- An unmix model separates one target: of a checkpoint with several stems (`num_stems`), the mask
  estimator of `--target`, found in `training.instruments`, is kept.
- MSST's training-only keys (its loss, gradient checkpointing, the choice of attention kernel) do
  not change the network or its output and are left out. The architecture variants unmix does not
  build (linear-attention layers, skip connections, PoPE) are refused unless off.
- A key the YAML leaves out takes MSST's constructor default, which is unmix's default except for
  the transformer depths (MSST's default is 2 each; its configurations and unmix use 1).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from unmix.core.errors import UnmixError, first_line

if TYPE_CHECKING:
    import torch

    from unmix.core.config.loader import LoadedConfiguration

MODELS = {"bs_roformer": "bs-roformer", "mel_band_roformer": "mel-roformer"}
"""MSST's `--model_type` names and the unmix models that build the same networks."""

TELLING_KEYS = {"freqs_per_bands": "bs_roformer", "num_bands": "mel_band_roformer"}
"""The `model:` key that only one of the two networks has, and so tells which network a YAML describes."""

MSST_DEFAULTS = {"time_transformer_depth": 2, "freq_transformer_depth": 2, "stft_win_length": 2048}
"""MSST constructor defaults that differ from unmix's, for a YAML that leaves these keys out (unmix's window
defaults to stft_n_fft, MSST's to 2048 whatever the n_fft: a 4096-point YAML without a window uses 2048)."""

REQUIRED = ("dim", "depth")
"""Keys MSST's constructors have no default for."""

READ_APART = ("stereo", "num_stems")
"""`model:` keys that are no option but are read: the collection's channels, and the stem to keep."""

NOT_OPTIONS = frozenset({
    "multi_stft_resolution_loss_weight", "multi_stft_resolutions_window_sizes", "multi_stft_hop_size",
    "multi_stft_normalized",  # MSST's training loss; unmix's comes from training.loss_function
    "use_torch_checkpoint",  # recomputes activations to save memory in training; same results
    "flash_attn",  # which attention kernel computes the same attention
    "dim_freqs_in",  # read by neither MSST network
    "match_input_audio_length",  # unmix's networks always return as many samples as they get
})
"""`model:` keys that are no unmix option and need none."""

OFF_ONLY = {"linear_transformer_depth": 0, "skip_connection": False, "use_pope": False}
"""MSST architecture variants unmix does not build: importable only when off."""

TUPLE_TAG = "tag:yaml.org,2002:python/tuple"
YAML_TAG_PREFIX = "tag:yaml.org,2002:"
DEFAULT_OVERLAP = 4
"""MSST's inference overlap when the YAML gives none (what its configurations mostly set)."""


class MsstImportError(UnmixError):
    """An MSST file that cannot be imported: one line naming the file and what is wrong with it."""


@attrs.frozen
class Imported:
    """What `import_msst` made, for the command's summary."""

    run_folder: Path
    model_type: str
    model: str
    target: str
    parameters: int
    ignored_keys: tuple[str, ...]


# ---- the command --------------------------------------------------------------------------


@click.group("import")
def import_group() -> None:
    """Turn models trained by other projects into unmix run folders."""


@import_group.command("msst")
@click.option("--config", "configuration", required=True, type=click.Path(dir_okay=False),
              help="The model's YAML file from Music-Source-Separation-Training.")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False),
              help="Its weights (.ckpt or .pth): a state dict, or a dict holding one.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="The run folder to create; it must not exist yet.")
@click.option("--target", default=None,
              help="The stem to keep, one of the YAML's training.instruments [default: training.target_instrument, "
                   "or the only stem].")
@click.option("--model-type", type=click.Choice(sorted(MODELS)), default=None,
              help="MSST's model type [default: told by the YAML: freqs_per_bands is bs_roformer, num_bands "
                   "mel_band_roformer].")
def import_msst_command(configuration: str, checkpoint: str, output: str, target: str | None,
                        model_type: str | None) -> None:
    """Import an MSST BS-RoFormer or Mel-RoFormer checkpoint (unmix-torch).

    Writes a run folder that `unmix predict --run-folder` and `unmix evaluate` use, and that a
    configuration's training.initial_weights fine-tunes from. Only weights are loaded from
    the checkpoint and only plain YAML (with !!python/tuple) from the configuration: files that need
    more are refused.
    """
    imported = import_msst(Path(configuration), Path(checkpoint), Path(output), target=target,
                           model_type=model_type)
    run = imported.run_folder
    click.echo(f"imported MSST {imported.model_type} as unmix model torch:{imported.model}: target "
               f"'{imported.target}', {imported.parameters:,} parameters, into {run}")
    if imported.ignored_keys:
        click.echo(f"  left out (they do not change what the network computes): {', '.join(imported.ignored_keys)}")
    click.echo(f"  separate:  unmix predict --run-folder {run} --song SONG")
    click.echo(f"  fine-tune: unmix train CONFIG, CONFIG with \"base\": \"{run / 'configuration.jsonc'}\", your "
               f"collection.folder and \"training\": {{\"initial_weights\": \"{run}\"}}")


# ---- importing ----------------------------------------------------------------------------


def import_msst(configuration: Path, checkpoint: Path, output: Path, *, target: str | None = None,
                model_type: str | None = None) -> Imported:
    """Check both files, then write the run folder `output` whole or not at all.

    Everything that can be checked without building the network is checked first, the unsafe
    parts (YAML tags, pickled objects) before anything else is read from the files.
    """
    for path, what in ((configuration, "MSST configuration"), (checkpoint, "checkpoint")):
        if not path.is_file():
            state = "is a folder" if path.is_dir() else "does not exist"
            raise MsstImportError(f"{what} '{path}' {state}")
    if output.exists():
        raise MsstImportError(f"'{output}' already exists; unmix never overwrites a run folder: give a new --output")
    msst = read_msst_yaml(configuration)
    model_section = _section(msst, "model", configuration)
    model_type = model_type or model_type_of(model_section, configuration)
    stem, chosen = chosen_stem(msst, model_section, configuration, target)
    source, ignored = unmix_configuration(msst, model_section, configuration, model_type, chosen)
    weights = one_stem(load_msst_weights(checkpoint), stem, checkpoint)
    staging = _staging_folder(output)
    try:
        loaded, model = _build(staging, output, source, configuration)
        load_into(model.network, weights, checkpoint, configuration)
        _write_run_files(staging, loaded, model, configuration, checkpoint, model_type, chosen, stem)
        _move_into_place(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Imported(output, model_type, MODELS[model_type], chosen, model.trainable_parameters(), ignored)


# ---- the YAML -----------------------------------------------------------------------------


class _ForbiddenTag(Exception):
    """Raised while constructing a node with a tag the loader must not construct."""

    def __init__(self, tag: str, line: int) -> None:
        super().__init__(tag)
        self.tag = tag
        self.line = line


@functools.cache
def _msst_loader() -> type:
    """A SafeLoader subclass that also constructs `!!python/tuple` (MSST's band lists) and refuses every other
    tag it does not know, Python's included, before constructing anything from it."""
    import yaml

    class MsstLoader(yaml.SafeLoader):
        pass

    def tuple_from_sequence(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[Any, ...]:
        return tuple(loader.construct_sequence(node, deep=True))

    def refuse(loader: yaml.SafeLoader, tag: str, node: yaml.Node) -> Any:
        shown = "!!" + tag.removeprefix(YAML_TAG_PREFIX) if tag.startswith(YAML_TAG_PREFIX) else tag
        raise _ForbiddenTag(shown, node.start_mark.line + 1)

    MsstLoader.add_constructor(TUPLE_TAG, tuple_from_sequence)
    MsstLoader.add_multi_constructor(None, refuse)
    return MsstLoader


def read_msst_yaml(path: Path) -> dict[str, Any]:
    """The YAML's mapping of sections, read with `_msst_loader`."""
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_msst_loader())  # a SafeLoader subclass
    except _ForbiddenTag as forbidden:
        raise MsstImportError(f"MSST configuration '{path}' uses the YAML tag '{forbidden.tag}' (line "
                              f"{forbidden.line}); unmix reads only plain YAML and !!python/tuple, as other tags can "
                              "run code: not imported") from None
    except UnicodeDecodeError:
        raise MsstImportError(f"MSST configuration '{path}' is not a text file (not UTF-8); give its .yaml") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or first_line(error)
        raise MsstImportError(f"MSST configuration '{path}' is not valid YAML{line}: {problem}") from None
    if not isinstance(data, dict):
        raise MsstImportError(f"MSST configuration '{path}' holds no mapping of sections (audio:, model:, ...)")
    return data


def _section(msst: Mapping[str, Any], name: str, path: Path, required: bool = True) -> dict[str, Any]:
    section = msst.get(name)
    if section is None and not required:
        return {}
    if not isinstance(section, dict):
        problem = "has no" if section is None else "has a malformed"
        raise MsstImportError(f"MSST configuration '{path}' {problem} '{name}:' section; is it a model's YAML?")
    return section


def model_type_of(model_section: Mapping[str, Any], path: Path) -> str:
    """bs_roformer or mel_band_roformer, from the key only one of them has."""
    told = {TELLING_KEYS[key] for key in TELLING_KEYS if key in model_section}
    if len(told) == 1:
        return told.pop()
    if told:
        raise MsstImportError(f"MSST configuration '{path}' sets both freqs_per_bands (BS-RoFormer) and num_bands "
                              "(Mel-RoFormer); give --model-type")
    raise MsstImportError(f"MSST configuration '{path}' describes neither a BS-RoFormer (model.freqs_per_bands) nor "
                          "a Mel-RoFormer (model.num_bands), the models unmix imports; if it is one with default "
                          "bands, give --model-type")


def chosen_stem(msst: Mapping[str, Any], model_section: Mapping[str, Any], path: Path,
                target: str | None) -> tuple[int, str]:
    """The index of the mask estimator to keep, and the name of its stem.

    MSST orders a multi-stem model's estimators as `training.instruments`; a one-stem model
    separates `training.target_instrument` (or, without one, the first instrument).
    """
    training = _section(msst, "training", path, required=False)
    instruments = training.get("instruments") or []
    if not isinstance(instruments, list) or not all(isinstance(name, str) for name in instruments):
        raise MsstImportError(f"MSST configuration '{path}': training.instruments is {_shown(instruments)}, not a "
                              "list of stem names")
    named = training.get("target_instrument")
    if named is not None and not isinstance(named, str):
        raise MsstImportError(f"MSST configuration '{path}': training.target_instrument is {_shown(named)}, not a "
                              "stem name")
    stems = model_section.get("num_stems", 1)
    if not isinstance(stems, int) or isinstance(stems, bool) or stems < 1:
        raise MsstImportError(f"MSST configuration '{path}': model.num_stems is {_shown(stems)}, not a number of "
                              "stems")
    if stems == 1:
        separated = named or (instruments[0] if instruments else target)
        if separated is None:
            raise MsstImportError(f"MSST configuration '{path}' names no stem (training.target_instrument or "
                                  "training.instruments); give --target")
        if target is not None and target != separated:
            raise MsstImportError(f"MSST configuration '{path}' describes a model that separates '{separated}' "
                                  f"only, not '{target}'")
        return 0, separated
    if len(instruments) != stems:
        raise MsstImportError(f"MSST configuration '{path}': model.num_stems is {stems} but training.instruments "
                              f"lists {len(instruments)} stems, so which estimator separates what is unknown")
    if target is None:
        raise MsstImportError(f"the model of '{path}' separates {stems} stems ({', '.join(instruments)}) and an unmix "
                              "model one: give --target")
    if target not in instruments:
        raise MsstImportError(f"--target '{target}' is not among the stems of '{path}' (training.instruments: "
                              f"{', '.join(instruments)})")
    return instruments.index(target), target


def unmix_configuration(msst: Mapping[str, Any], model_section: Mapping[str, Any], path: Path, model_type: str,
                        target: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The unmix configuration (over master.jsonc) that rebuilds the network, and the MSST keys left out."""
    from unmix.torch.roformer_options import BS_ROFORMER_OPTIONS, MEL_ROFORMER_OPTIONS

    declared = {option.name for option in (BS_ROFORMER_OPTIONS if model_type == "bs_roformer"
                                           else MEL_ROFORMER_OPTIONS)}
    for key in REQUIRED:
        if key not in model_section:
            raise MsstImportError(f"MSST configuration '{path}' has no model.{key}, which the network needs")
    options: dict[str, Any] = {key: value for key, value in MSST_DEFAULTS.items() if key in declared}
    ignored = []
    for key, value in model_section.items():
        if not isinstance(key, str):
            raise MsstImportError(f"MSST configuration '{path}': the model: section has a key that is no name "
                                  f"({_shown(key)})")
        if key in declared:
            options[key] = _plain(value, f"model.{key}", path)
        elif key in READ_APART:
            continue
        elif key in NOT_OPTIONS:
            ignored.append(key)
        elif key in OFF_ONLY:
            if value != OFF_ONLY[key]:
                raise MsstImportError(f"MSST configuration '{path}' sets model.{key} to {_shown(value)}; unmix's "
                                      f"{MODELS[model_type]} has no such variant, so it cannot be imported")
        else:
            raise MsstImportError(f"MSST configuration '{path}' sets model.{key}, which unmix's {MODELS[model_type]} "
                                  f"does not know; it cannot be imported as that model")
    audio = _section(msst, "audio", path, required=False)
    inference = _section(msst, "inference", path, required=False)
    training = _section(msst, "training", path, required=False)
    size = _whole(inference.get("chunk_size") or audio.get("chunk_size"), "audio.chunk_size", path)
    overlap = _whole(inference.get("num_overlap", DEFAULT_OVERLAP), "inference.num_overlap", path)
    stereo = model_section.get("stereo", False)
    if not isinstance(stereo, bool):
        raise MsstImportError(f"MSST configuration '{path}': model.stereo is {_shown(stereo)}, not true or false")
    source: dict[str, Any] = {
        "environment": {"name": f"MSST {model_type} {path.stem}"},
        "collection": {
            "target": target,
            "sample_rate": _whole(audio.get("sample_rate", 44100), "audio.sample_rate", path),
            "stereo": stereo,
        },
        "transformation": {"name": "waveform",
                           "options": {"size": size, "step": max(1, size // overlap), "normalizer": ""}},
        "training": {
            "backend": "torch",
            "model": {"name": MODELS[model_type], "options": options},
            "loss_function": "multi_resolution_stft",
            "metrics": [],
        },
    }
    optimizer = training.get("optimizer")
    if isinstance(optimizer, str) and optimizer.lower() in ("adam", "rmsprop"):
        source["training"]["optimizer"] = {"name": optimizer.lower()}
    if isinstance(training.get("lr"), (int, float)) and not isinstance(training.get("lr"), bool):
        source["training"].setdefault("optimizer", {})["lr"] = float(training["lr"])
    if isinstance(training.get("batch_size"), int) and training["batch_size"] >= 1:
        source["training"]["batch_size"] = training["batch_size"]
    return source, tuple(ignored)


SCALARS = (bool, int, float, str, type(None))


def _plain(value: Any, key: str, path: Path) -> Any:
    """An option value as JSON holds it: a scalar, or a flat list of them (MSST's tuples become lists).

    Nothing nested is copied: YAML's aliases can make a few lines stand for billions of entries,
    which only copying or printing the value would expand.
    """
    if isinstance(value, SCALARS):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(item, SCALARS) for item in value):
        return list(value)
    raise MsstImportError(f"MSST configuration '{path}': {key} is {_shown(value)}, not a number, text or a list of "
                          "them")


def _shown(value: Any) -> str:
    """A YAML value for a message, without expanding a nested one (see `_plain`)."""
    if isinstance(value, SCALARS):
        return repr(value)[:80]
    return f"a {type(value).__name__}"


def _whole(value: Any, key: str, path: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        missing = "has no" if value is None else f"has {_shown(value)} for"
        raise MsstImportError(f"MSST configuration '{path}' {missing} {key}, which must be a whole number of at "
                              "least 1")
    return value


# ---- the checkpoint -----------------------------------------------------------------------


def load_msst_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of an MSST checkpoint, loaded without unpickling anything but tensors.

    MSST saves a bare state dict for inference and a dict holding it under "state_dict",
    "model_state_dict" or "state" while training; a model trained wrapped in DataParallel (or
    compiled) has "module." (or "_orig_mod.") before every name.
    """
    import pickle
    import zipfile

    import torch

    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only load failed" not in str(error).lower():
            raise MsstImportError(f"checkpoint '{path}' is not a readable PyTorch checkpoint "
                                  f"({first_line(error)})") from None
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        needs = f"a pickled {found.group(1)}" if found else first_line(error)
        raise MsstImportError(f"checkpoint '{path}' holds more than tensors ({needs}); unmix loads only weights "
                              "(MSST's scripts/prepare_weights_for_inference.py writes a weights-only copy)") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise MsstImportError(f"checkpoint '{path}' is not a readable PyTorch checkpoint ({first_line(error)}; it "
                              "may have been cut short)") from None
    for wrapper in ("state_dict", "model_state_dict", "state"):
        if isinstance(contents, dict) and isinstance(contents.get(wrapper), dict):
            contents = contents[wrapper]
            break
    if not isinstance(contents, dict) or not contents:
        raise MsstImportError(f"checkpoint '{path}' holds no state dict of weights")
    odd = next((key for key, value in contents.items() if not isinstance(value, torch.Tensor)), None)
    if odd is not None:
        raise MsstImportError(f"checkpoint '{path}' holds no state dict of weights ('{odd}' is a "
                              f"{type(contents[odd]).__name__}, not a tensor)")
    for prefix in ("module.", "_orig_mod."):
        if all(str(key).startswith(prefix) for key in contents):
            contents = {str(key).removeprefix(prefix): value for key, value in contents.items()}
    return contents


def one_stem(weights: Mapping[str, torch.Tensor], stem: int, path: Path) -> dict[str, torch.Tensor]:
    """The weights with only the mask estimator of `stem`, renamed as an unmix model's single one."""
    estimator = re.compile(r"^mask_estimators\.(\d+)\.(.*)$")
    kept = {}
    for key, value in weights.items():
        match = estimator.match(key)
        if match is None:
            kept[key] = value
        elif int(match.group(1)) == stem:
            kept[f"mask_estimators.0.{match.group(2)}"] = value
    if not any(key.startswith("mask_estimators.0.") for key in kept):
        raise MsstImportError(f"checkpoint '{path}' has no weights for mask estimator {stem} "
                              f"(mask_estimators.{stem}.*), the stem to import")
    return kept


def load_into(network: torch.nn.Module, weights: Mapping[str, torch.Tensor], checkpoint: Path,
              configuration: Path) -> None:
    """Load `weights`, after checking that they are exactly the network's: names first, then shapes."""
    expected = network.state_dict()
    missing = [key for key in expected if key not in weights]
    unexpected = [key for key in weights if key not in expected]
    if missing or unexpected:
        first = f"missing key '{missing[0]}'" if missing else f"unexpected key '{unexpected[0]}'"
        raise MsstImportError(f"checkpoint '{checkpoint}' does not fit the model '{configuration}' describes: {first} "
                              f"({len(missing)} missing, {len(unexpected)} unexpected)")
    for key, tensor in expected.items():
        if tuple(weights[key].shape) != tuple(tensor.shape):
            raise MsstImportError(f"checkpoint '{checkpoint}' does not fit the model '{configuration}' describes: "
                                  f"'{key}' is {list(weights[key].shape)} there, {list(tensor.shape)} in the model")
    network.load_state_dict(dict(weights))


# ---- the run folder -----------------------------------------------------------------------


def _staging_folder(output: Path) -> Path:
    """A hidden folder beside `output`, renamed onto it when complete: no half-made run folder is ever seen.
    Those of imports that were killed outright (kill -9, a power cut) are removed first."""
    from unmix.core.files import raise_write_error, remove_stale_temporaries, temporary_path

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(output.parent)
        staging = temporary_path(output)
        staging.mkdir()
    except OSError as error:
        raise_write_error(output, error)
    return staging


def _build(staging: Path, output: Path, source: Mapping[str, Any], configuration: Path) -> tuple[Any, Any]:
    """Write configuration.jsonc as `unmix train` would (merged over master.jsonc), then build its model from it."""
    from unmix.core.config.loader import load_configuration
    from unmix.core.data.transforms import create_transform
    from unmix.core.files import WriteError, write_text_atomically
    from unmix.core.models.factory import build_model
    from unmix.core.runs import RunFolder

    run = RunFolder(staging)
    draft = staging / "msst-import.jsonc"
    write_text_atomically(draft, json.dumps(source, indent=2) + "\n")
    try:
        merged = load_configuration(draft)
        chain = " -> ".join(str(file) for file in merged.chain[:-1])
        header = f"// imported from {configuration} by `unmix import msst`; merged from {chain}\n"
        write_text_atomically(run.configuration_file, header + json.dumps(merged.data, indent=2) + "\n")
        draft.unlink()
        loaded = run.load_configuration()
        settings = loaded.settings
        bins = settings.spectrogram_generation.fft_length // 2 + 1
        input_shape = create_transform(settings).input_shape(bins, settings.channels)
        return loaded, build_model(loaded, input_shape)
    except (MsstImportError, WriteError):
        raise
    except UnmixError as error:
        problem = str(error).replace(str(staging), str(output))
        raise MsstImportError(f"MSST configuration '{configuration}' describes a model unmix cannot build: "
                              f"{problem}") from None


def _write_run_files(staging: Path, loaded: LoadedConfiguration, model: Any, configuration: Path, checkpoint: Path,
                     model_type: str, target: str, stem: int) -> None:
    """model.json, state.json and weights/ as after a training's first epoch; environment.json says where from."""
    from unmix.core.files import write_text_atomically
    from unmix.core.models.factory import describe_model
    from unmix.core.runs import RunFolder, describe_environment
    from unmix.core.training.callbacks import BEST, LAST, TrainingState

    run = RunFolder(staging)
    settings = loaded.settings
    input_shape = model.description["input_shape"]
    run.write_json(run.model_file, describe_model(model, loaded, input_shape))
    run.write_json(run.state_file, attrs.asdict(TrainingState(learning_rate=model.learning_rate)))
    weights = run.folder("weights")
    for which in (BEST, LAST):
        model.save_checkpoint(weights / f"{which}{model.checkpoint_suffix}")
    environment = describe_environment(loaded, Path.cwd())
    environment["configuration_file"] = str(configuration)
    environment["configuration_chain"] = [str(configuration)]
    environment["imported"] = {
        "from": "Music-Source-Separation-Training",
        "model_type": model_type,
        "configuration": str(configuration.resolve()),
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": _sha256(checkpoint),
        "target": target,
        "stem_index": stem,
    }
    run.write_json(run.file("environment.json"), environment)
    write_text_atomically(run.file(settings.environment.log_file),
                          f"imported MSST {model_type} from {configuration} and {checkpoint}: model "
                          f"torch:{settings.training.model.name}, target '{target}', "
                          f"{model.trainable_parameters():,} trainable parameters\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _move_into_place(staging: Path, output: Path) -> None:
    """Rename the finished folder onto `output`, which must still not exist (another process may have made it)."""
    if output.exists():
        raise MsstImportError(f"'{output}' appeared while importing; unmix never overwrites a run folder: give a new "
                              "--output")
    try:
        os.rename(staging, output)
    except OSError as error:
        raise MsstImportError(f"cannot create '{output}': {error.strerror or error}") from None
