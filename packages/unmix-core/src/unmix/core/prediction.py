"""Separating songs with a trained model: the engine, and streaming a file from decoder to encoder.

A song is decoded at its own rate, resampled to the model's rate, separated in segments of
`prediction.chunk_seconds` (with enough context on each side that the result equals separating
the whole song at once: `unmix.core.separation.SegmentPlan`), resampled back and written by the
exporter as it goes. Memory depends on the segment length, not on the song's. The stems come out
at the input's rate, channel count and exact length; the rest is the mix minus the target, so
the two stems always add up to the input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
from tqdm import tqdm

from unmix.core.config import LoadedConfiguration, load_configuration
from unmix.core.config_schema import Configuration
from unmix.core.errors import UnmixError
from unmix.core.interfaces import Exporter, ExportOptions, SeparationModel, Source, StemWriter
from unmix.core.plugins import plugin_manager
from unmix.core.runs import RunFolder, RunFolderError, open_run_folder
from unmix.core.separation import SegmentPlan, SeparationSettings, separate_segment
from unmix.core.streaming import AudioReader, Resampler
from unmix.core.training import build_model
from unmix.core.training_data import create_transform
from unmix.core.transforms import Transform

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


def engine_from_run(run_folder: str | Path, batch_size: int | None = None) -> Engine:
    """The engine of a run folder, with its best checkpoint (the seed used the last one)."""
    run = open_run_folder(run_folder)
    loaded = run.load_configuration()
    description = run.read_json(run.model_file)
    checkpoint = run.folder("weights") / f"best{description.get('checkpoint_suffix', '')}"
    if not checkpoint.is_file():
        raise RunFolderError(f"run folder '{run.path}' has no best checkpoint ({checkpoint.name}); "
                             "train it for at least one epoch first")
    return _engine(loaded, checkpoint, batch_size, tuple(description["input_shape"]))


def engine_from_weights(weights: str | Path, configuration: str | Path, batch_size: int | None = None) -> Engine:
    """An engine from a checkpoint file and the configuration it was trained with."""
    weights = Path(weights)
    if not weights.is_file():
        raise UnmixError(f"weights file '{weights}' does not exist; give a checkpoint from a run's weights/ folder")
    return _engine(load_configuration(configuration), weights, batch_size, None)


def _engine(loaded: LoadedConfiguration, checkpoint: Path, batch_size: int | None,
            input_shape: tuple[int, ...] | None) -> Engine:
    settings = loaded.settings
    transform = create_transform(settings)
    bins = settings.spectrogram_generation.fft_length // 2 + 1
    shape = input_shape or transform.input_shape(bins, settings.channels)
    model = build_model(loaded, shape)
    if checkpoint.suffix != model.checkpoint_suffix:
        raise UnmixError(f"'{checkpoint}' is a {checkpoint.suffix} checkpoint but {loaded.path} builds a "
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


def output_names(engine: Engine, song: str, template: str, extension: str) -> dict[str, str]:
    """File names of the two stems from the `{song}_{stem}.{ext}` template."""
    try:
        names = {stem: template.format(song=song, stem=stem, ext=extension) for stem in (engine.target, REST)}
    except (KeyError, IndexError, ValueError) as error:
        raise UnmixError(f"file name template '{template}' is invalid ({error}); use the fields "
                         "{song}, {stem} and {ext}") from None
    if len(set(names.values())) < 2:
        raise UnmixError(f"file name template '{template}' gives both stems the same name; include {{stem}}")
    return names


def separate_file(engine: Engine, path: Path, output_folder: Path, exporter: Exporter, options: ExportOptions,
                  template: str, song: str | None = None, progress: bool = True) -> SeparatedSong:
    """Separate one file into `<song>_<target>` and `<song>_rest` in `output_folder`."""
    output_folder = prediction_output_folder(None, output_folder)
    reader = AudioReader(path)
    song = song or path.stem
    rate, channels = reader.info.sample_rate, reader.info.channels
    names = output_names(engine, song, template, exporter.extension)
    writers: dict[str, StemWriter] = {}
    try:
        for stem, name in names.items():
            writers[stem] = exporter.open(output_folder / name, rate, channels, options)
        total = reader.info.frames
        bar = tqdm(total=round(total / rate, 1) if total else None, desc=song[:40], unit="s", leave=False,
                   disable=not progress, dynamic_ncols=True)
        written = 0
        with bar:
            for target, rest in _separated_blocks(engine, reader, channels, rate):
                writers[engine.target].write(target)
                writers[REST].write(rest)
                written += target.shape[1]
                bar.update(round(target.shape[1] / rate, 1))
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        reader.close()
    return SeparatedSong(song=song, seconds=written / rate,
                         files={stem: output_folder / name for stem, name in names.items()})


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
    exporter_class = plugin_manager().get("exporters", format_name)
    return exporter_class() if isinstance(exporter_class, type) else exporter_class


def prediction_output_folder(run: RunFolder | None, output: str | Path | None) -> Path:
    folder = Path(output) if output is not None else (run.path / "predictions" if run else Path("predictions"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UnmixError(f"cannot create output folder '{folder}' ({error.strerror}); "
                         "choose another --output") from None
    if not folder.is_dir():
        raise UnmixError(f"output '{folder}' is not a folder; choose another --output")
    return folder
