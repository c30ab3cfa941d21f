"""Separating songs with a trained model: the engine, and streaming a file from decoder to encoder.

A song is decoded at its own rate, resampled to the model's rate, separated in segments of
`prediction.chunk_seconds` (with enough context on each side that the result equals separating
the whole song at once: `unmix.core.separation.engine.SegmentPlan`), resampled back and written by the
exporter as it goes (with `--peak normalize`, once the song's peak is known: `_PeakStage`). Memory
depends on the segment length, not on the song's. The stems come out at the input's rate, channel
count and exact length; the rest is the mix minus the target, so the two stems add up to the
input. Core applies `--peak` to both before a writer sees them (`normalize`: one gain for the
song), so only clipping can make them stop adding up, and it is warned about.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

import attrs
import numpy as np
from tqdm import tqdm

from unmix.core.config.loader import LoadedConfiguration, configuration_from_data, load_configuration
from unmix.core.config.schema import Configuration
from unmix.core.data.streaming import AudioReader, Resampler
from unmix.core.data.transforms import Transform, create_transform
from unmix.core.errors import PluginError, UnmixError
from unmix.core.files import raise_write_error, temporary_path
from unmix.core.interfaces import (
    Exporter,
    ExportOptions,
    Runtime,
    SeparationModel,
    SongInput,
    SongWriter,
    Source,
    StemWriter,
)
from unmix.core.models.factory import build_model, warn_if_plugin_changed
from unmix.core.plugins import plugin_manager
from unmix.core.runs import RunFolder, RunFolderError, open_run_folder
from unmix.core.separation.engine import SegmentPlan, SeparationSettings, separate_segment

log = logging.getLogger("unmix")
REST = "rest"
_READ_BLOCK = 65536


@attrs.define
class Engine:
    """A model ready to separate: the network, its transform and the settings it was trained with."""

    model: SeparationModel
    transform: Transform
    settings: Configuration
    batch_size: int

    @property
    def sample_rate(self) -> int:
        return self.settings.collection.sample_rate

    @property
    def target(self) -> str:
        return self.settings.collection.target

    @property
    def separation_settings(self) -> SeparationSettings:
        return SeparationSettings(fft_length=self.settings.spectrogram_generation.fft_length,
                                  hop_length=self.settings.hop_length, model_channels=self.settings.channels,
                                  batch_size=self.batch_size)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict(inputs)

    def separate_samples(self, samples: np.ndarray) -> np.ndarray:
        """The target for a whole (channels, samples) signal at the model's rate, in memory."""
        return separate_segment(samples, 0, samples.shape[-1], self.transform, self.predict,
                                self.separation_settings)


@attrs.frozen
class ModelFiles:
    """A model's configuration and checkpoint, found and checked but not loaded.

    Building the network is the slow part of `unmix predict`, so the command first checks every
    input against these settings and only then calls `load_engine`.
    """

    loaded: LoadedConfiguration
    checkpoint: Path
    input_shape: tuple[int, ...] | None = None
    runtime: Runtime | None = None
    """Set for an exported model file, which its runtime loads instead of a backend building the network."""

    @property
    def settings(self) -> Configuration:
        return self.loaded.settings


def run_model_files(run: RunFolder) -> ModelFiles:
    """The configuration and best checkpoint of a run folder (the seed used the last one)."""
    loaded = run.load_configuration()
    description = run.read_json(run.model_file)
    checkpoint = run.folder("weights") / f"best{description.get('checkpoint_suffix', '')}"
    if not checkpoint.is_file():
        raise RunFolderError(f"run folder '{run.path}' has no best checkpoint ({checkpoint.name}); "
                             "train it for at least one epoch first")
    warn_if_plugin_changed(run.name, loaded, description)
    return ModelFiles(loaded, checkpoint, tuple(description["input_shape"]))


def weights_model_files(weights: str | Path, configuration: str | Path) -> ModelFiles:
    """A checkpoint file and the configuration it was trained with."""
    weights = Path(weights)
    if not weights.is_file():
        raise UnmixError(f"weights file '{weights}' does not exist; give a checkpoint from a run's weights/ folder")
    return ModelFiles(load_configuration(configuration), weights)


def runtimes_by_suffix() -> dict[str, Runtime]:
    """The installed runtimes (`register_runtimes`) by the model file suffix each reads; of two that read
    one suffix, the one whose registered name sorts first."""
    runtimes: dict[str, Runtime] = {}
    for registration in plugin_manager().registry("runtimes"):
        suffix = getattr(registration.thing, "suffix", None)
        if isinstance(suffix, str) and suffix:
            runtimes.setdefault(suffix, registration.thing)
    return runtimes


def model_file_model_files(model_file: str | Path) -> ModelFiles:
    """An exported model file (`unmix export`) and the configuration it carries, for the runtime
    that a plugin registers for its suffix (`unmix-onnx` for .onnx)."""
    path = Path(model_file)
    if not path.is_file():
        what = "is a folder (give a run folder with --run-folder)" if path.is_dir() else "does not exist"
        raise UnmixError(f"model file '{path}' {what}; give a file written by `unmix export`")
    runtimes = runtimes_by_suffix()
    runtime = runtimes.get(path.suffix)
    if runtime is None:
        known = ", ".join(sorted(runtimes)) or "none"
        hint = "pip install unmix-onnx" if path.suffix == ".onnx" else "export the run with `unmix export`"
        raise UnmixError(f"model file '{path}': no installed runtime reads {path.suffix or 'suffix-less'} files "
                         f"(installed runtimes read: {known}); {hint}")
    loaded = configuration_from_data(dict(runtime.read_configuration(path)), path)
    return ModelFiles(loaded, path, runtime=runtime)


def current_export(run: RunFolder, files: ModelFiles) -> Path | None:
    """The run's exported model file (`RunFolder.exported_model`) that an installed runtime reads and that
    is at least as new as the checkpoint it came from: `unmix predict` prefers it, since onnxruntime
    separates faster than either framework on a CPU (docs/models.md). A stale one is warned about."""
    for suffix in runtimes_by_suffix():
        exported = run.exported_model(suffix)
        if not exported.is_file():
            continue
        if exported.stat().st_mtime >= files.checkpoint.stat().st_mtime:
            return exported
        log.warning("run '%s': its export %s is older than its best checkpoint, so the framework separates; "
                    "refresh it with `unmix export --run-folder %s --overwrite`", run.path, exported.name, run.path)
    return None


def run_engine_model_files(run: RunFolder, engine: str = "auto") -> ModelFiles:
    """What separates for a run folder: with `engine` "framework" its best checkpoint, with "exported" its
    current export (refused when there is none), with "auto" the export when there is a current one."""
    files = run_model_files(run)
    exported = current_export(run, files) if engine != "framework" else None
    if exported is None:
        if engine == "exported":
            raise UnmixError(f"run '{run.path}' has no current export that an installed runtime reads; write one with "
                             f"`unmix export --run-folder {run.path}` (and pip install unmix-onnx)")
        return files
    return model_file_model_files(exported)


def engine_from_run(run_folder: str | Path, batch_size: int | None = None) -> Engine:
    """The engine of a run folder, with its best checkpoint."""
    return load_engine(run_model_files(open_run_folder(run_folder)), batch_size)


def engine_from_weights(weights: str | Path, configuration: str | Path, batch_size: int | None = None) -> Engine:
    """An engine from a checkpoint file and the configuration it was trained with."""
    return load_engine(weights_model_files(weights, configuration), batch_size)


def engine_from_model_file(model_file: str | Path, batch_size: int | None = None) -> Engine:
    """An engine from an exported model file, run by the runtime registered for its suffix."""
    return load_engine(model_file_model_files(model_file), batch_size)


def load_engine(files: ModelFiles, batch_size: int | None = None) -> Engine:
    """Build the network and load its checkpoint; `batch_size` None uses prediction.batch_size."""
    settings = files.settings
    transform = create_transform(settings)
    if files.runtime is not None:
        return Engine(model=files.runtime.load(files.checkpoint, settings), transform=transform, settings=settings,
                      batch_size=batch_size or settings.prediction.batch_size)
    bins = settings.spectrogram_generation.fft_length // 2 + 1
    shape = files.input_shape or transform.input_shape(bins, settings.channels)
    model = build_model(files.loaded, shape)
    checkpoint = files.checkpoint
    if checkpoint.suffix != model.checkpoint_suffix:
        raise UnmixError(f"'{checkpoint}' is a {checkpoint.suffix} checkpoint but {files.loaded.path} builds a "
                         f"{model.backend} model, which reads {model.checkpoint_suffix} files; "
                         "use the configuration the weights were trained with")
    model.load_checkpoint(checkpoint)
    return Engine(model=model, transform=transform, settings=settings,
                  batch_size=batch_size or settings.prediction.batch_size)


@attrs.frozen
class SeparatedSong:
    song: str
    seconds: float
    files: dict[str, Path]


TEMPLATE_FIELDS = ("song", "stem", "ext")
_SHOWN_FILES = 3


def check_template(template: str, per_song: bool = False) -> None:
    """Refuse a file name template that cannot name files inside the output folder.

    Subfolders (`{song}/{stem}.{ext}`) are allowed; an absolute path or a `..` component is not,
    because it would write outside --output. `per_song` checks it for an exporter that writes one
    file per song, where `{stem}` is optional and left out (`song_template`).
    """
    prefix = f"file name template '{template}' (--filename or prediction.filename)"
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as error:
        raise UnmixError(f"{prefix} is invalid ({error}); use the fields {{song}}, {{stem}} and {{ext}}") from None
    unknown = [field for field in fields if field not in TEMPLATE_FIELDS]
    if unknown:
        raise UnmixError(f"{prefix} has the unknown field {{{unknown[0]}}}; use only {{song}}, {{stem}} and {{ext}}")
    if "stem" not in fields and not per_song:
        raise UnmixError(f"{prefix} gives both stems the same name; include {{stem}}")
    parts = re.split(r"[/\\]", template)
    if PurePosixPath(template).is_absolute() or PureWindowsPath(template).is_absolute() or ".." in parts:
        raise UnmixError(f"{prefix} leads outside the output folder; give a name inside it, such as "
                         "'{song}_{stem}.{ext}', and choose the folder with --output")
    if per_song:
        without_stem = song_template(template)
        if any(not name or name.startswith(".") for name in re.split(r"[/\\]", without_stem)):
            raise UnmixError(f"{prefix} names no file for a format that writes one file per song: without "
                             f"{{stem}} it is '{without_stem}'; give one such as '{{song}}.{{ext}}'")


def song_template(template: str) -> str:
    """The file name template of a format that writes one file per song: `{stem}` left out with the
    `_`, `-` or spaces that join it to the rest of its name, so the default `{song}_{stem}.{ext}`
    gives `{song}.{ext}` and `{stem}-{song}.{ext}` gives `{song}.{ext}`."""
    leading = re.sub(r"(^|[/\\])\{stem\}[-_ ]*", r"\1", template)
    return re.sub(r"[-_ ]*\{stem\}", "", leading)


def _path_safe(song: str) -> str:
    """A song name that cannot add folders to an output path: separators become '_', '.' and '..' too."""
    name = re.sub(r"[/\\\x00]", "_", song)
    return "_" if name in ("", ".", "..") else name


def output_names(target: str, song: str, template: str, extension: str, per_song: bool = False) -> dict[str, str]:
    """File names (relative to the output folder) of the two stems from the `{song}_{stem}.{ext}` template;
    with `per_song`, both stems are in the one file that `song_template` names."""
    check_template(template, per_song)
    song = _path_safe(song)
    if per_song:
        name = song_template(template).format(song=song, ext=extension)
        return {stem: name for stem in (target, REST)}
    return {stem: template.format(song=song, stem=stem, ext=extension) for stem in (target, REST)}


def output_files(target: str, song: str, folder: Path, template: str, extension: str,
                 per_song: bool = False) -> dict[str, Path]:
    """The two stems' paths, which `check_template` and `_path_safe` keep inside `folder`."""
    return {stem: folder / name for stem, name in output_names(target, song, template, extension, per_song).items()}


def songs_outside_output(songs: Sequence[SongInput], songs_folder: Path | None, output: Path) -> list[SongInput]:
    """The songs, without files inside an output folder that lies within the songs folder.

    Otherwise a second run would take the first run's stems for songs. When the output folder
    is the songs folder itself, every file stays a song, and `plan_outputs` refuses to overwrite any.
    """
    if songs_folder is None:
        return list(songs)
    output, songs_folder = output.resolve(), songs_folder.resolve()
    if output == songs_folder or songs_folder not in output.parents:
        return list(songs)
    kept = [song for song in songs if output not in song.path.resolve().parents]
    if not kept:
        raise UnmixError(f"every audio file in '{songs_folder}' lies in the output folder '{output}'; "
                         "choose another --songs folder or --output")
    return kept


def plan_outputs(target: str, songs: Sequence[SongInput], folder: Path, template: str, extension: str,
                 overwrite: bool, per_song: bool = False) -> list[dict[str, Path]]:
    """Every song's output files, checked before anything is separated; with `per_song` (the
    exporter's), both stems of a song map to its one file.

    An input song is never overwritten, even with `overwrite`; two songs never write the same
    file; an existing output file is replaced only with `overwrite`.
    """
    inputs = {song.path.resolve(): song for song in songs}
    writers: dict[Path, str] = {}
    plans = []
    for song in songs:
        files = output_files(target, song.name, folder, template, extension, per_song)
        stems_by_path: dict[Path, list[str]] = {}
        for stem, path in files.items():
            stems_by_path.setdefault(path, []).append(stem)
        for path, stems in stems_by_path.items():
            resolved = path.resolve()
            if resolved in inputs:
                raise UnmixError(f"song '{song.name}' would write its {' and '.join(stems)} "
                                 f"stem{'s' if len(stems) > 1 else ''} to '{path}', which is an input song; "
                                 "predict never overwrites its inputs, even with --overwrite; "
                                 "choose a separate --output folder")
            if resolved in writers:
                raise UnmixError(f"songs '{writers[resolved]}' and '{song.name}' would both write '{path}'; "
                                 "include {song} in --filename")
            writers[resolved] = song.name
        plans.append(files)
    _refuse_existing(list(dict.fromkeys(path for files in plans for path in files.values())), folder, overwrite)
    return plans


def _refuse_existing(paths: list[Path], folder: Path, overwrite: bool) -> None:
    folders = [path for path in paths if path.is_dir()]
    if folders:
        raise UnmixError(f"output '{folders[0]}' is a folder; remove it or choose another --output or --filename")
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    if existing and not overwrite:
        shown = ", ".join(f"'{path.relative_to(folder)}'" for path in existing[:_SHOWN_FILES])
        more = f" and {len(existing) - _SHOWN_FILES} more" if len(existing) > _SHOWN_FILES else ""
        raise UnmixError(f"{len(existing)} output file{'s' if len(existing) > 1 else ''} already exist in "
                         f"'{folder}' ({shown}{more}); pass --overwrite to replace them or choose another --output")


def separate_file(engine: Engine, path: Path, output_folder: Path, exporter: Exporter, options: ExportOptions,
                  template: str, song: str | None = None, progress: bool = True) -> SeparatedSong:
    """Separate one file into `<song>_<target>` and `<song>_rest` (or, for an exporter that writes
    per song, `<song>`) in `output_folder`, replacing existing outputs but never the input itself."""
    song = song or path.stem
    files = output_files(engine.target, song, Path(output_folder), template, exporter.extension,
                         writes_per_song(exporter))
    for output in files.values():
        if output.resolve() == path.resolve():
            raise UnmixError(f"output '{output}' is the input song '{path}'; predict never overwrites its inputs; "
                             "choose another output folder")
    return separate_into(engine, path, files, exporter, options, song, progress)


def separate_into(engine: Engine, path: Path, files: dict[str, Path], exporter: Exporter, options: ExportOptions,
                  song: str, progress: bool = True) -> SeparatedSong:
    """Separate one file into the stem files `files` (from `plan_outputs` or `output_files`)."""
    reader = AudioReader(path)
    rate, channels = reader.info.sample_rate, reader.info.channels
    output: _PeakStage | None = None
    try:
        writer = _open_writer(exporter, files, rate, channels, options, song)
        output = _PeakStage(writer, options, next(iter(files.values())))
        total = reader.info.frames
        bar = tqdm(total=round(total / rate, 1) if total else None, desc=song[:40], unit="s", leave=False,
                   disable=not progress, dynamic_ncols=True)
        written = 0
        with bar:
            for target, rest in _separated_blocks(engine, reader, channels, rate):
                output.write({engine.target: target, REST: rest})
                written += target.shape[1]
                bar.update(round(target.shape[1] / rate, 1))
        output.close()
    except BaseException:
        if output is not None:
            output.abort()
        raise
    finally:
        reader.close()
    if output.clipped_samples:
        log.warning("song '%s': %d samples of its stems were above full scale (peak %.2f, %+.1f dBFS) and were "
                    "clipped, so there target + rest no longer add up to the input; use --bit-depth float "
                    "(wav) to keep them, or --peak normalize to scale both stems by one gain",
                    song, output.clipped_samples, output.peak, 20 * np.log10(output.peak))
    return SeparatedSong(song=song, seconds=written / rate, files=dict(files))


def writes_per_song(exporter: Exporter) -> bool:
    """Whether `exporter` writes one file per song with every stem (`Exporter.per_song`, default False)."""
    return bool(getattr(exporter, "per_song", False))


def _open_writer(exporter: Exporter, files: dict[str, Path], rate: int, channels: int, options: ExportOptions,
                 song: str) -> SongWriter:
    """The song's writer: the exporter's own per song, or one `StemWriter` per stem behind `_StemWriters`."""
    stems = tuple(files)
    for output in dict.fromkeys(files.values()):
        _create_folder(output.parent)
    if writes_per_song(exporter):
        return exporter.open(files[stems[0]], rate, channels, options, song=song, stem=None, stems=stems)
    writers = _StemWriters()
    try:
        for stem, output in files.items():
            writers.add(stem, exporter.open(output, rate, channels, options, song=song, stem=stem, stems=stems))
    except BaseException:
        writers.abort()
        raise
    return writers


class _StemWriters:
    """A song's `StemWriter`s as one `SongWriter`, so that core streams every song the same way."""

    def __init__(self) -> None:
        self._writers: dict[str, StemWriter] = {}

    @property
    def keeps_peaks(self) -> bool:
        return all(getattr(writer, "keeps_peaks", False) for writer in self._writers.values())

    def add(self, stem: str, writer: StemWriter) -> None:
        self._writers[stem] = writer

    def write_stems(self, blocks: Mapping[str, np.ndarray]) -> None:
        for stem, block in blocks.items():
            self._writers[stem].write(block)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def abort(self) -> None:
        for writer in self._writers.values():
            writer.abort()


NORMALIZED_PEAK_DBFS = -0.1
"""Where `normalize` puts a song's loudest stem sample: just below full scale, so no encoder clips it."""


def normalizing_gain(peak: float) -> float:
    """The gain `normalize` gives every stem of a song whose loudest sample is `peak`: 1 when it fits."""
    return float(10 ** (NORMALIZED_PEAK_DBFS / 20)) / peak if peak > 1.0 else 1.0


class _PeakStage:
    """A song's writer behind `ExportOptions.peak`, so that writers only ever get final samples.

    `clip` clips each block to [-1, 1] on its way to the writer (unless the writer keeps peaks)
    and counts what it cut, for the warning. `normalize` needs the loudest sample of every stem
    before the first is written, which streaming only knows at the end: the blocks are parked in
    a float32 scratch file beside the outputs (memory stays at one block; the scratch has an
    `unmix.core.files` temporary name, so one a SIGKILL left is removed by the next writer there)
    and written, scaled by one gain, on close().
    """

    def __init__(self, writer: SongWriter, options: ExportOptions, destination: Path) -> None:
        self.peak = 0.0
        """The loudest sample of any stem so far, before clipping or gain."""
        self.clipped_samples = 0
        self._writer = writer
        self._clips = not getattr(writer, "keeps_peaks", False)
        self._normalizes = options.peak == "normalize"
        self._destination = destination
        self._scratch: _StemScratch | None = None

    def write(self, blocks: dict[str, np.ndarray]) -> None:
        self.peak = max(self.peak, *(float(np.max(np.abs(block), initial=0.0)) for block in blocks.values()))
        if not self._normalizes:
            self._writer.write_stems({stem: self._clipped(block) for stem, block in blocks.items()})
            return
        try:
            if self._scratch is None:
                self._scratch = _StemScratch(temporary_path(self._destination.with_name(
                    f"{self._destination.name}.f32")))
            self._scratch.append(blocks)
        except OSError as error:
            raise_write_error(self._destination, error)

    def close(self) -> None:
        if self._scratch is not None:
            gain = np.float32(normalizing_gain(self.peak))
            for blocks in self._scratch.blocks():
                self._writer.write_stems({stem: block * gain for stem, block in blocks.items()})
            self._scratch.remove()
        self._writer.close()

    def abort(self) -> None:
        try:
            self._writer.abort()
        finally:
            if self._scratch is not None:
                self._scratch.remove()

    def _clipped(self, block: np.ndarray) -> np.ndarray:
        if not self._clips:
            return block
        self.clipped_samples += int(np.count_nonzero(np.abs(block) > 1.0))
        return np.clip(block, -1.0, 1.0)


class _StemScratch:
    """Every stem of a song parked on disk as float32 frames, the stems side by side, until read back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = open(path, "xb")
        self._stems: tuple[str, ...] = ()
        self._channels = 0

    def append(self, blocks: dict[str, np.ndarray]) -> None:
        assert self._handle is not None
        self._stems = tuple(blocks)
        self._channels = next(iter(blocks.values())).shape[0]
        np.ascontiguousarray(np.concatenate(list(blocks.values())).T, dtype=np.float32).tofile(self._handle)

    def blocks(self) -> Iterator[dict[str, np.ndarray]]:
        assert self._handle is not None
        self._handle.close()
        self._handle = None
        width = len(self._stems) * self._channels
        with open(self.path, "rb") as handle:
            while width:
                frames = np.fromfile(handle, dtype=np.float32, count=_READ_BLOCK * width).reshape(-1, width).T
                if not frames.shape[1]:
                    return
                yield {stem: frames[index * self._channels:(index + 1) * self._channels]
                       for index, stem in enumerate(self._stems)}

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with contextlib.suppress(OSError):
            self.path.unlink()


def _separated_blocks(engine: Engine, reader: AudioReader, channels: int,
                      rate: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(target, rest) blocks at the input's rate, exactly as many samples as the input has.

    The rest is the input minus the target at the input's rate, so nothing above the model's
    Nyquist frequency is lost from the rest and the two stems add up to the input exactly.
    """
    model_rate = engine.sample_rate
    to_model = Resampler(rate, model_rate, channels)
    back_to_input = Resampler(model_rate, rate, channels)
    plan = SegmentPlan.for_transform(engine.transform, engine.separation_settings,
                                     round(engine.settings.prediction.chunk_seconds * model_rate))
    model_samples = _SampleBuffer(channels, start=-plan.margin)
    input_samples = _SampleBuffer(channels, start=0)
    core_start = 0
    finished = False
    blocks = reader.blocks(_READ_BLOCK)
    while not finished or core_start < model_samples.end:
        while not finished and model_samples.end < core_start + plan.core + plan.margin:
            block = next(blocks, None)
            finished = block is None
            if block is None:
                block = np.zeros((channels, 0), np.float32)
            input_samples.append(block)
            model_samples.append(to_model.process(block, last=finished))
        total = model_samples.end if finished else None
        if total is not None and core_start >= total:
            break
        segment = model_samples.read(core_start - plan.margin, core_start + plan.core + plan.margin, total)
        target = separate_segment(segment, core_start - plan.margin, total, engine.transform, engine.predict,
                                  engine.separation_settings)
        core_stop = core_start + plan.core if total is None else min(core_start + plan.core, total)
        last = total is not None and core_stop >= total
        target_out = back_to_input.process(target[:, plan.margin:plan.margin + core_stop - core_start], last=last)
        yield from _with_rest(target_out, input_samples, last)
        model_samples.drop_before(core_stop - plan.margin)
        core_start = core_stop
    if input_samples.samples.shape[1]:  # the resampler came up short: the input's last samples
        yield from _with_rest(np.zeros((channels, 0), np.float32), input_samples, True)


def _with_rest(target: np.ndarray, input_samples: _SampleBuffer,
               last: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pair target samples with the input samples at the same positions; at the end, match lengths."""
    available = input_samples.samples.shape[1]
    if last:
        if target.shape[1] < available:
            padding = np.zeros((target.shape[0], available - target.shape[1]), np.float32)
            target = np.concatenate([target, padding], axis=1)
        target = target[:, :available]
    count = min(target.shape[1], available)
    if count == 0:
        return
    mix = input_samples.samples[:, :count]
    input_samples.drop_before(input_samples.start + count)
    yield target[:, :count], mix - target[:, :count]


class _SampleBuffer:
    """Model-rate samples from absolute index `start` on; zeros before 0 and after the end."""

    def __init__(self, channels: int, start: int) -> None:
        self.channels = channels
        self.start = start
        self.samples = np.zeros((channels, -start if start < 0 else 0), np.float32)

    @property
    def end(self) -> int:
        return self.start + self.samples.shape[1]

    def append(self, block: np.ndarray) -> None:
        if block.shape[1]:
            self.samples = np.concatenate([self.samples, block.astype(np.float32, copy=False)], axis=1)

    def read(self, begin: int, stop: int, total: int | None) -> np.ndarray:
        segment = np.zeros((self.channels, stop - begin), np.float32)
        available_stop = min(stop, self.end if total is None else min(self.end, total))
        lower = max(begin, self.start, 0)
        if available_stop > lower:
            inside = self.samples[:, lower - self.start:available_stop - self.start]
            segment[:, lower - begin:available_stop - begin] = inside
        return segment

    def drop_before(self, index: int) -> None:
        if index > self.start:
            self.samples = self.samples[:, index - self.start:]
            self.start = index


def find_source(uri: str) -> Source:
    """The first registered source (in name order) that claims `uri`: a file, a folder, a link, or
    whatever a plugin understands (`tone://440`). Asked on every call, so late plugins take part."""
    registry = plugin_manager().registry("sources")
    for registration in registry:
        if registration.thing.matches(uri):
            return registration.thing
    known = ", ".join(f"{r.name} [{r.plugin}]" for r in registry) or "none installed"
    raise UnmixError(
        f"'{uri}' is neither an existing audio file or folder nor a link a source understands "
        f"(sources: {known}); check the path or the link"
    )


def exporter_for(format_name: str) -> Exporter:
    """The exporter registered as `format_name`, refused by name if its open() predates the song and stem names.

    Checked here, before any song is separated, rather than by catching the TypeError of the
    first open() call: that names the plugin and the signature it needs, and a TypeError raised
    inside a current exporter's open() stays that plugin's own error.
    """
    exporter_class = plugin_manager().get("exporters", format_name)
    exporter = exporter_class() if isinstance(exporter_class, type) else exporter_class
    if not _takes_stem_names(exporter):
        plugin = plugin_manager().provider("exporters", format_name).describe()
        raise PluginError(f"{plugin} registers the exporter '{format_name}', whose open() does not take the "
                          f"keyword arguments {', '.join(_OPEN_KEYWORDS)}; unmix calls "
                          "open(path, sample_rate, channels, options, *, song, stem, stems) (see register_exporters "
                          "in docs/plugins.md); update the plugin or choose another --format")
    return exporter


_OPEN_KEYWORDS = ("song", "stem", "stems")


def _takes_stem_names(exporter: Exporter) -> bool:
    try:
        parameters = inspect.signature(exporter.open).parameters.values()
    except AttributeError:
        return False
    except (TypeError, ValueError):  # no signature to read (a C function): let the call tell
        return True
    named = {parameter.name for parameter in parameters
             if parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return set(_OPEN_KEYWORDS) <= named or any(parameter.kind is inspect.Parameter.VAR_KEYWORD
                                               for parameter in parameters)


def prediction_output_folder(run: RunFolder | None, output: str | Path | None) -> Path:
    """The output folder, checked but not created: --output, else the run's predictions/ folder."""
    folder = Path(output) if output is not None else (run.path / "predictions" if run else Path("predictions"))
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                blocker = "it is a file" if candidate == folder else f"'{candidate}' is a file"
                raise UnmixError(f"output folder '{folder}' cannot be created: {blocker}; choose another --output")
            break
    return folder


def _create_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UnmixError(f"cannot create output folder '{folder}' ({error.strerror}); "
                         "choose another --output") from None
