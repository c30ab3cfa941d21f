"""Protocol checks, one per kind of plugin: drive an object through its documented protocol.

Core calls a plugin's objects in ways a plugin's own tests rarely think of: a batch axis in front
of every transform call, a checkpoint loaded into a freshly built model, `abort()` after half a
song, a URI the source must not claim. Each check here makes those calls with small made-up
inputs and raises AssertionError naming the object, the call and what the protocol expects, so
a plugin's test fails on the broken promise instead of a run failing later, deep inside core.
Each returns what it built or found, for further checks of the test's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from unmix.core.config.loader import load_configuration
from unmix.core.config.schema import Configuration, Transformation, TransformationOptions
from unmix.core.data.cache import load_stem
from unmix.core.data.collection import DatasetScan
from unmix.core.data.streaming import check_readable
from unmix.core.data.tracks import StemFile, Track
from unmix.core.data.transforms import Transform, create_transform
from unmix.core.errors import UnmixError
from unmix.core.interfaces import ExportOptions, ModelBuilder, SeparationModel, SongInput
from unmix.testing._assertions import require

__all__ = ["check_dataset", "check_exporter", "check_model_builder", "check_source", "check_transform"]

FOREIGN_URI = "unmix-testing-no-such-scheme://nothing/here"
"""A URI no source may claim: one that claims everything hides every source registered after it."""
_MODEL_MEMBERS = ("backend", "checkpoint_suffix", "trainable_parameters", "summary", "train_epoch", "evaluate",
                  "predict", "learning_rate", "save_checkpoint", "load_checkpoint")
_BATCH = 2
_SONG = "song"
_STEPS = 2


def check_model_builder(builder: ModelBuilder, configuration: str | Path | Configuration,
                        folder: str | Path) -> SeparationModel:
    """Build a model for `configuration` and use it as the training driver and the prediction engine do.

    Two steps of training and of evaluation on random windows, a prediction, a change of learning
    rate, and a checkpoint (written into `folder`) loaded into a second model, which must then
    predict the same. Returns the first model.
    """
    settings = configuration if isinstance(configuration, Configuration) else load_configuration(configuration).settings
    transform = create_transform(settings)
    bins = settings.spectrogram_generation.fft_length // 2 + 1
    input_shape = transform.input_shape(bins, settings.channels)
    output_shape = (_BATCH, *transform.target_shape(bins, settings.channels))
    subject = f"the model that {_named(builder)} builds"
    model = builder(settings, input_shape)
    missing = [member for member in _MODEL_MEMBERS if not hasattr(model, member)]
    require(not missing, f"{subject} lacks {', '.join(missing)} of unmix.core.SeparationModel")
    require(isinstance(model.backend, str) and bool(model.backend),
            f"{subject}: backend is {model.backend!r}; it must name the backend (\"torch\", \"numpy\", ...)")
    suffix = model.checkpoint_suffix
    require(isinstance(suffix, str) and suffix.startswith(".") and len(suffix) > 1,
            f"{subject}: checkpoint_suffix is {suffix!r}; it must be a file suffix such as \".pt\"")
    parameters = model.trainable_parameters()
    require(isinstance(parameters, (int, np.integer)) and parameters >= 0,
            f"{subject}: trainable_parameters() returned {parameters!r}; it must return a count (int)")
    require(isinstance(model.summary(), str), f"{subject}: summary() must return text")

    rng = np.random.default_rng(0)
    batches = [(rng.random((_BATCH, *input_shape), dtype=np.float32), rng.random(output_shape, dtype=np.float32))
               for _ in range(_STEPS)]
    progress: list[tuple[int, Any]] = []
    trained = model.train_epoch(iter(batches), _STEPS, lambda step, running: progress.append((step, running)))
    _check_metrics(subject, "train_epoch", trained)
    require(len(progress) == _STEPS, f"{subject}: train_epoch(batches, steps={_STEPS}, on_batch) called on_batch "
                                     f"{len(progress)} times; call it once per batch, the progress bar counts them")
    _check_metrics(subject, "evaluate", model.evaluate(iter(batches), _STEPS))
    inputs = batches[0][0]
    predicted = np.asarray(model.predict(inputs))
    require(predicted.shape == output_shape,
            f"{subject}: predict() of inputs {inputs.shape} returned {predicted.shape}; the transform "
            f"'{transform.name}' needs (batch, bins, output frames, channels) = {output_shape}")
    require(bool(np.all(np.isfinite(predicted))), f"{subject}: predict() returned NaN or infinite values")

    rate = float(model.learning_rate)
    require(math.isfinite(rate) and rate >= 0, f"{subject}: learning_rate is {rate}; it must be a finite rate")
    model.learning_rate = rate / 2
    require(math.isclose(float(model.learning_rate), rate / 2, rel_tol=1e-6),
            f"{subject}: learning_rate reads {model.learning_rate} after being set to {rate / 2}; the "
            "learning-rate callbacks set it between epochs")
    model.learning_rate = rate

    checkpoints = Path(folder) / "checkpoint"
    checkpoints.mkdir(parents=True, exist_ok=True)
    before = set(checkpoints.iterdir())
    path = checkpoints / f"last{suffix}"
    path.unlink(missing_ok=True)
    model.save_checkpoint(path)
    require(path.is_file(), f"{subject}: save_checkpoint('{path}') wrote no file at that path")
    left = sorted(str(extra.name) for extra in set(checkpoints.iterdir()) - before - {path})
    require(not left, f"{subject}: save_checkpoint('{path}') also left {left}; write one file, whole or not at "
                      "all (unmix.core.atomic_path)")
    second = builder(settings, input_shape)
    second.load_checkpoint(path)
    restored = np.asarray(second.predict(inputs))
    require(restored.shape == predicted.shape and bool(np.allclose(restored, predicted, rtol=1e-4, atol=1e-5)),
            f"{subject}: a new model that loaded '{path.name}' predicts differently (largest difference "
            f"{_largest_difference(restored, predicted)}); a checkpoint must hold every weight")
    return model


def check_transform(transform_class: type[Transform], *, size: int = 8, step: int = 4, bins: int = 9,
                    channels: int = 2) -> Transform:
    """Build `transform_class` from a configuration and check shapes, batching, masks and overlap-add weights.

    Random complex windows of (channels, bins, size) go through `training_pair`, `prepare_input`
    and `untransform`, one at a time and as a batch of three, which must agree; a mask transform
    must give back the mix for a mask of one and silence for zero; `synthesis_weights` must sum to
    one over windows `step` frames apart. A waveform transform (`kind` "waveform") gets real
    (channels, size) chunks of samples instead and must return samples. Returns the transform.
    """
    require(isinstance(transform_class, type) and issubclass(transform_class, Transform),
            f"{transform_class!r} is not a subclass of unmix.core.Transform")
    subject = f"transform '{transform_class.name}' ({transform_class.__qualname__})"
    require(isinstance(transform_class.name, str) and bool(transform_class.name),
            f"{transform_class.__qualname__} has no name; set the class variable `name` that configurations use")
    waveform = transform_class.kind == "waveform"
    outputs = ("waveform",) if waveform else ("mask", "magnitude")
    require(transform_class.model_output in outputs and transform_class.training_target in outputs,
            f"{subject}: model_output is {transform_class.model_output!r} and training_target "
            f"{transform_class.training_target!r}; a {transform_class.kind} transform's must be one of {outputs}")
    settings = Configuration(transformation=Transformation(
        name=transform_class.name, options=TransformationOptions(size=size, step=step)))
    transform = transform_class.from_configuration(settings)
    require(isinstance(transform, transform_class), f"{subject}: from_configuration() returned {transform!r}")

    rng = np.random.default_rng(0)
    if waveform:
        mixes = rng.normal(size=(3, channels, size)).astype(np.float32)
        targets = (mixes * rng.random(mixes.shape)).astype(np.float32)
    else:
        shape = (3, channels, bins, size)
        mixes = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
        targets = (mixes * rng.random(shape)).astype(np.complex64)
    input_shape = transform.input_shape(bins, channels)
    target_shape = transform.target_shape(bins, channels)
    model_input, target = transform.training_pair(mixes[0], targets[0])
    for what, array, expected in (("model input", model_input, input_shape), ("target", target, target_shape)):
        array = np.asarray(array)
        require(array.shape == expected, f"{subject}: training_pair() gave a {what} of shape {array.shape}; "
                                         f"input_shape()/target_shape() say {expected}")
        require(array.dtype == np.float32,
                f"{subject}: training_pair() gave a {array.dtype} {what}; models get float32")
        require(bool(np.all(np.isfinite(array))), f"{subject}: training_pair() gave a {what} with NaN or infinity")
    require(bool(np.allclose(transform.prepare_input(mixes[0]), model_input)),
            f"{subject}: prepare_input() differs from training_pair()'s input; the model would see other inputs "
            "when separating than when training")
    batch_input, batch_target = transform.training_pair(mixes, targets)
    require(np.shape(batch_input) == (3, *input_shape) and bool(np.allclose(batch_input[0], model_input))
            and bool(np.allclose(batch_target[0], target)),
            f"{subject}: training_pair() of a batch of 3 windows differs from one window at a time; every "
            "method must accept leading batch axes")

    prediction = rng.random((3, *target_shape), dtype=np.float32)
    estimate = np.asarray(transform.untransform(mixes[0], prediction[0]))
    estimate_shape = (channels, transform.output_width) if waveform else (channels, bins, transform.output_width)
    estimate_kind = "real samples" if waveform else "a complex spectrogram"
    require(estimate.shape == estimate_shape and np.iscomplexobj(estimate) != waveform,
            f"{subject}: untransform() returned {estimate.dtype} {estimate.shape}; it must return the target's "
            f"estimate as {estimate_kind} of shape {estimate_shape}")
    require(bool(np.all(np.isfinite(estimate))), f"{subject}: untransform() returned NaN or infinity")
    batch_estimate = np.asarray(transform.untransform(mixes, prediction))
    require(batch_estimate.shape == (3, *estimate_shape) and bool(np.allclose(batch_estimate[0], estimate)),
            f"{subject}: untransform() of a batch of 3 differs from one window at a time")
    if transform.model_output == "mask":
        covered = mixes[0][..., transform.output_columns]
        ones = np.asarray(transform.untransform(mixes[0], np.ones(target_shape, np.float32)))
        zeros = np.asarray(transform.untransform(mixes[0], np.zeros(target_shape, np.float32)))
        require(bool(np.allclose(ones, covered, atol=1e-5)) and bool(np.allclose(zeros, 0, atol=1e-6)),
                f"{subject}: a mask transform must give back the mix for a mask of one and silence for zero")

    weights = np.asarray(transform.synthesis_weights(), dtype=np.float64)
    width = transform.output_width
    require(weights.shape == (width,) and bool(np.all(weights >= 0)) and bool(np.all(np.isfinite(weights))),
            f"{subject}: synthesis_weights() must be {width} finite weights >= 0, one per output column; got "
            f"{weights.shape}")
    windows = width // transform.step + 3
    total = np.zeros(windows * transform.step + width)
    for index in range(windows):
        total[index * transform.step:index * transform.step + width] += weights
    inside = total[width:windows * transform.step]
    require(bool(np.allclose(inside, 1.0, atol=1e-5)),
            f"{subject}: synthesis_weights() of windows {transform.step} frames apart sum to "
            f"{inside.min():.4g}..{inside.max():.4g}, not 1; the separated target would be scaled by that, frame "
            "by frame")
    return transform


def check_source(source: Any, uri: str, temp_folder: str | Path) -> list[SongInput]:
    """Ask `source` for the songs behind `uri` as `unmix predict` does; returns them.

    The source must claim `uri` (and not `FOREIGN_URI`), and hand back named `SongInput`s whose
    files exist and decode.
    """
    subject = _subject("source", source)
    claimed = source.matches(uri)
    require(claimed is True, f"{subject}: matches({uri!r}) returned {claimed!r}; it must return True (a bool) "
                             "for a URI it handles")
    foreign = source.matches(FOREIGN_URI)
    require(foreign is False, f"{subject}: matches({FOREIGN_URI!r}) returned {foreign!r}; a source that claims "
                              "URIs it does not handle hides every source after it")
    temp_folder = Path(temp_folder)
    temp_folder.mkdir(parents=True, exist_ok=True)
    songs = source.songs(uri, temp_folder)
    require(isinstance(songs, list) and len(songs) > 0,
            f"{subject}: songs({uri!r}) returned {songs!r}; it must return a non-empty list of SongInput (or "
            "raise UnmixError saying what is wrong with the URI)")
    names = [getattr(song, "name", None) for song in songs]
    for song in songs:
        require(isinstance(song, SongInput), f"{subject}: songs() returned {song!r}; each song must be an "
                                             "unmix.core.SongInput(name, path)")
        require(isinstance(song.name, str) and bool(song.name.strip()), f"{subject}: a song has no name: {song!r}")
        require(Path(song.path).is_file(), f"{subject}: song '{song.name}' names '{song.path}', which is no file")
        try:
            check_readable(Path(song.path))
        except UnmixError as error:
            raise AssertionError(f"{subject}: song '{song.name}' cannot be decoded: {error}") from None
    require(len(set(names)) == len(names), f"{subject}: songs() named two songs alike ({names}); their stems "
                                           "would overwrite each other")
    return songs


def check_dataset(layout: Any, folder: str | Path, target: str) -> list[Track]:
    """Find the tracks for `target` in `folder` (which must hold some) as training does; returns them.

    Every stem file must exist and decode, names must be unique within a collection, a second
    search must find the same tracks, `scan()` (when present) must agree with `find_tracks()`, and
    an instrument no file names must find nothing: under `collection.dataset: "auto"` every
    layout is asked, and one that claims any folder for any instrument takes them all.
    """
    subject = _subject("dataset layout", layout)
    folder = Path(folder)
    tracks = layout.find_tracks(folder, target)
    require(isinstance(tracks, list), f"{subject}: find_tracks() returned {type(tracks).__name__}; it must return "
                                      "a list of unmix.core.data.tracks.Track")
    require(len(tracks) > 0, f"{subject}: find_tracks('{folder}', {target!r}) found no songs")
    keys = []
    for track in tracks:
        require(isinstance(track, Track), f"{subject}: find_tracks() returned {track!r}; each must be a Track")
        require(bool(track.name) and isinstance(track.collection, str),
                f"{subject}: track {track!r} needs a name and a collection")
        for role in ("target", "rest"):
            stems = getattr(track, role)
            require(isinstance(stems, tuple) and len(stems) > 0 and all(isinstance(s, StemFile) for s in stems),
                    f"{subject}: track '{track.name}' has {role} {stems!r}; it must be a non-empty tuple of StemFile")
            for stem in stems:
                require(Path(stem.path).is_file(), f"{subject}: track '{track.name}' names {role} file "
                                                   f"'{stem.path}', which does not exist")
                _check_decodes(subject, track.name, stem)
        keys.append((track.collection, track.name))
    require(len(set(keys)) == len(keys), f"{subject}: two tracks share a collection and name ({keys}); the "
                                         "cache stores songs as <collection>/<song>")
    require(layout.find_tracks(folder, target) == tracks,
            f"{subject}: a second find_tracks() found other tracks; the same folder must give the same songs")
    if hasattr(layout, "scan"):
        scan = layout.scan(folder, target)
        require(isinstance(scan, DatasetScan) and list(scan.tracks) == tracks,
                f"{subject}: scan() must return a DatasetScan whose tracks are find_tracks()'s")
    others = layout.find_tracks(folder, "unmixtestingnoinstrument")
    require(not others, f"{subject}: find_tracks() found {len(others)} songs for an instrument no file names; "
                        "a layout must only claim songs that have the target")
    return tracks


def check_exporter(exporter: Any, folder: str | Path, *, sample_rate: int = 8000, channels: int = 2,
                   options: ExportOptions | None = None, read: Callable[[Path], Any] | None = None,
                   tolerance: float = 1e-4) -> list[Path]:
    """Write a song's stems with `exporter` as `unmix predict` does, and abort another; returns the files written.

    `open()` is called with keywords only, as core calls it; per-stem writers get `write(block)`,
    per-song writers (`per_song` true) `write_stems(blocks)`; after `close()` each file must be
    in place with nothing else left in `folder`, and after `abort()` (twice: it must be
    idempotent) nothing at all. `folder` must be empty or missing. With `read(path) -> (channels,
    samples)` (for a per-song file, a mapping of stem -> (channels, samples)), what was written must
    read back within `tolerance`: give `options` a sample format that can, such as
    `ExportOptions(bit_depth="float")`.
    """
    subject = _subject("exporter", exporter)
    for field in ("name", "extension"):
        value = getattr(exporter, field, None)
        require(isinstance(value, str) and bool(value) and not value.startswith("."),
                f"{subject}: {field} is {value!r}; it must be a non-empty string without a leading dot")
    per_song = bool(getattr(exporter, "per_song", False))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    require(not any(folder.iterdir()), f"check_exporter needs an empty folder; '{folder}' holds files")
    stems = ("vocals", "rest")
    rng = np.random.default_rng(0)
    blocks = [{stem: rng.uniform(-0.9, 0.9, (channels, frames)).astype(np.float32) for stem in stems}
              for frames in (1000, 1, 523)]
    expected = {stem: np.concatenate([block[stem] for block in blocks], axis=1) for stem in stems}
    options = options or ExportOptions()

    outputs = _write_song(exporter, folder, stems, blocks, sample_rate, channels, options, per_song)
    written = sorted(path.name for path in folder.iterdir())
    wanted = sorted({path.name for path in outputs.values()})
    require(written == wanted, f"{subject}: after close() the folder holds {written}, not just {wanted}; write "
                              "elsewhere until close() (unmix.core.files.AtomicFile) and leave nothing else")
    if read is not None:
        for stem, path in outputs.items():
            back = read(path)
            back = np.asarray(back[stem] if per_song else back)
            require(back.shape == expected[stem].shape and
                    bool(np.allclose(back, expected[stem], atol=tolerance)),
                    f"{subject}: '{path.name}' reads back as {back.shape} differing by "
                    f"{_largest_difference(back, expected[stem])} from the {expected[stem].shape} written")

    aborted = folder / "aborted"
    aborted.mkdir()
    writer = _open(exporter, aborted / f"{_SONG}.{exporter.extension}", sample_rate, channels, options, stems[0],
                   stems, per_song)
    _write_block(writer, blocks[0], stems, stems[0], per_song)
    writer.abort()
    writer.abort()
    left = sorted(path.name for path in aborted.iterdir())
    require(not left, f"{subject}: abort() left {left}; it must remove everything written so far")
    aborted.rmdir()
    return list(dict.fromkeys(outputs.values()))


def _write_song(exporter: Any, folder: Path, stems: tuple[str, ...], blocks: list[dict[str, np.ndarray]],
                sample_rate: int, channels: int, options: ExportOptions, per_song: bool) -> dict[str, Path]:
    """{stem: its file}: one file per stem, or the song's one file under every stem. As in core, every
    writer is open before the first block, and each block goes to every writer before the next."""
    extension = exporter.extension
    outputs = {stem: folder / (f"{_SONG}.{extension}" if per_song else f"{_SONG}_{stem}.{extension}") for stem in stems}
    writers = ([(None, _open(exporter, outputs[stems[0]], sample_rate, channels, options, None, stems, True))]
               if per_song else
               [(stem, _open(exporter, outputs[stem], sample_rate, channels, options, stem, stems, False))
                for stem in stems])
    for block in blocks:
        for stem, writer in writers:
            _write_block(writer, block, stems, stem, per_song)
    require(not any(path.exists() for path in outputs.values()),
            f"{_subject('exporter', exporter)}: a file appeared under its final name before close(); a stopped "
            "prediction would leave it looking finished")
    for _, writer in writers:
        writer.close()
    for path in outputs.values():
        require(path.is_file(), f"{_subject('exporter', exporter)}: close() left no file at '{path}'")
    return outputs


def _open(exporter: Any, path: Path, sample_rate: int, channels: int, options: ExportOptions, stem: str | None,
          stems: tuple[str, ...], per_song: bool) -> Any:
    return exporter.open(path, sample_rate, channels, options, song=_SONG, stem=None if per_song else stem,
                         stems=stems)


def _write_block(writer: Any, block: dict[str, np.ndarray], stems: tuple[str, ...], stem: str | None,
                 per_song: bool) -> None:
    if per_song:
        writer.write_stems({name: block[name] for name in stems})
    else:
        writer.write(block[stem])


def _check_decodes(subject: str, song: str, stem: StemFile) -> None:
    try:
        samples, rate = load_stem(stem)
    except UnmixError as error:
        raise AssertionError(f"{subject}: track '{song}': {error}") from None
    require(rate > 0 and samples.shape[-1] > 0 and bool(np.all(np.isfinite(samples))),
            f"{subject}: track '{song}': '{stem.path}' decodes to no audio, or to NaN or infinite samples")


def _check_metrics(subject: str, call: str, metrics: Any) -> None:
    require(isinstance(metrics, Mapping) and "loss" in metrics,
            f"{subject}: {call}() returned {metrics!r}; it must return a dict of metrics with at least \"loss\"")
    bad = {key: value for key, value in metrics.items() if not math.isfinite(float(value))}
    require(not bad, f"{subject}: {call}() returned non-finite metrics {bad}")


def _largest_difference(first: np.ndarray, second: np.ndarray) -> str:
    if np.shape(first) != np.shape(second):
        return f"(shapes {np.shape(first)} and {np.shape(second)})"
    return f"{float(np.max(np.abs(np.asarray(first) - np.asarray(second)), initial=0.0)):.3g}"


def _subject(kind: str, thing: Any) -> str:
    name = getattr(thing, "name", None)
    require(isinstance(name, str) and bool(name), f"the {kind} {type(thing).__qualname__} has no `name`")
    return f"{kind} '{name}' ({type(thing).__qualname__})"


def _named(builder: Any) -> str:
    name = getattr(builder, "name", None) or getattr(builder, "__qualname__", None) or type(builder).__qualname__
    return f"'{name}'"
