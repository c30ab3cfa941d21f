"""The small typed contracts between core and its plugins.

Core never imports a deep-learning framework: the training driver and the prediction engine
talk to a backend only through `SeparationModel`, and find the backend's model through the
`register_models` hook, which registers a `ModelBuilder` under a name such as "hourglass".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs
import numpy as np

from unmix.core.config.schema import Configuration

Batch = tuple[np.ndarray, np.ndarray]
"""Model inputs and targets, each float32 (batch, bins, frames, channels)."""

Metrics = dict[str, float]


@runtime_checkable
class SeparationModel(Protocol):
    """A network that maps mix-magnitude windows to masks (or magnitudes), with its optimiser."""

    backend: str
    """Which backend built it ("tensorflow", "torch"): checkpoints are only readable by their own."""

    checkpoint_suffix: str
    """File suffix of its checkpoints (".keras", ".pt"), so a run folder shows which backend wrote them."""

    def trainable_parameters(self) -> int: ...

    def summary(self) -> str: ...

    def train_epoch(
        self, batches: Iterable[Batch], steps: int, on_batch: Callable[[int, Metrics], None]
    ) -> Metrics:
        """Train on `steps` batches; `on_batch(step, running metrics)` drives the progress bar."""
        ...

    def evaluate(self, batches: Iterable[Batch], steps: int) -> Metrics:
        """Loss and metrics on held-out batches, without updating weights."""
        ...

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The raw network output for a batch of inputs: (batch, bins, output frames, channels), where
        output frames is the transform's output width (the window size, or `step` for centre masks); for
        the waveform transform, the target's (batch, channels, samples) for chunks of that shape."""
        ...

    @property
    def learning_rate(self) -> float: ...

    @learning_rate.setter
    def learning_rate(self, value: float) -> None: ...

    def save_checkpoint(self, path: Path) -> None:
        """Weights and optimiser state in one file, written whole or not at all."""
        ...

    def load_checkpoint(self, path: Path) -> None: ...


@runtime_checkable
class FineTunableModel(SeparationModel, Protocol):
    """A `SeparationModel` that can also be fine-tuned: the optional part of the model contract.

    Only a configuration that sets `training.initial_weights` or `training.freeze` needs these two
    methods; asking it of a model without them is one line naming the setting. The driver calls
    them once, after building the model and before the first epoch (`freeze` again on `--resume`).
    """

    def load_weights(self, path: Path) -> None:
        """The network's weights from a checkpoint of this model (same backend, same weight shapes), and
        nothing else: the optimiser, its step count and the learning rate stay as built, so a new run
        starts from these weights with a fresh optimiser. A checkpoint that does not fit is a `ModelError`
        naming the file and what differs."""
        ...

    def freeze(self, prefixes: Sequence[str]) -> None:
        """Stop training the weights under `prefixes` (each a weight or group name of the network, naming
        itself and everything below it): they keep their values, and `trainable_parameters()` counts the
        rest. A prefix that names nothing is a `ModelError` listing names the network has."""
        ...


@runtime_checkable
class ExportableModel(SeparationModel, Protocol):
    """A `SeparationModel` that can write its network as an ONNX graph: the optional part of the model
    contract that `unmix export` needs (`unmix-onnx`). Models built with a backend's kit have it."""

    def export_onnx(self, path: Path) -> Mapping[str, object]:
        """Write the network to `path` as an ONNX graph whose batch axis may vary, and say what it computes.

        Return `{"graph": "predict"}` when the graph computes `predict(inputs)` itself: the same input and
        output layout, one input and one output. Return `{"graph": "masked_spectrogram", "stft": {...}}`
        for a waveform network with its STFT inside, which ONNX cannot hold whole (no complex numbers, no
        inverse STFT): the graph maps the mix's STFT as real numbers (batch, bins * channels, frames,
        real/imaginary), channels interleaved per bin, to the target's, and the runtime does the STFT and
        its inverse with the settings in "stft": `n_fft`, `hop_length`, `win_length` (a centred periodic
        Hann window), `normalized` and `zero_dc` (the inverse zeroes bin 0), centred with reflection
        padding as `torch.stft` does.
        """
        ...


class ModelBuilder(Protocol):
    """What a `register_models` hook registers: builds a model for a configuration.

    `input_shape` is (bins, frames, channels) as the transform produces it, or (channels, samples) for the
    waveform transform.
    """

    def __call__(self, settings: Configuration, input_shape: tuple[int, int, int]) -> SeparationModel: ...


@attrs.frozen
class SongInput:
    """A song to separate: a local file (downloaded first if it came from the network) and its name."""

    name: str
    path: Path


class Source(Protocol):
    """What a `register_sources` hook registers: turns a URI (file, folder, link) into songs."""

    name: str

    def matches(self, uri: str) -> bool:
        """Whether this source handles `uri` (e.g. a YouTube link, an existing folder)."""
        ...

    def songs(self, uri: str, temp_folder: Path) -> list[SongInput]:
        """The songs behind `uri`; downloads go to `temp_folder`. Raises UnmixError when unreachable."""
        ...


@attrs.frozen
class ExportOptions:
    """How stems are encoded, and what happens to samples above full scale.

    `bit_depth` (the wav/flac sample format) and `bitrate_kbps` (lossy formats) are the writer's to
    apply: they are about encoding, which only the writer knows, and a format they mean nothing to
    ignores them (or refuses a value it cannot store, as flac does `float`). `peak` is core's to
    apply, before any writer sees a sample, because keeping target + rest equal to the input needs
    every stem of the song at once: `clip` cuts samples to [-1, 1] (unless the writer's
    `keeps_peaks` says its file holds more), `normalize` scales every stem of a song by the one
    gain that brings the loudest of them to -0.1 dBFS, when any exceeds full scale.
    """

    bit_depth: str = attrs.field(default="16", validator=attrs.validators.in_(("16", "24", "float")))
    bitrate_kbps: int = 192
    peak: str = attrs.field(default="clip", validator=attrs.validators.in_(("clip", "normalize")))


class StemWriter(Protocol):
    """One stem's file being written block by block; it appears under its name only on close().

    The blocks come with `ExportOptions.peak` already applied by core: within [-1, 1], except with
    `clip` into a writer whose `keeps_peaks` is true. A writer therefore never needs the whole song
    and must not change levels. It must still never wrap a sample (an integer encoder turns 1.5
    into a large negative number): a format that cannot hold samples beyond full scale clips what
    reaches it, since callers other than core may hand it some.
    """

    keeps_peaks: bool = False
    """Whether the file stores samples beyond full scale (32-bit float), so `clip` leaves them and
    the stems keep adding up to the input. Optional: core reads it with a default of False."""

    def write(self, block: np.ndarray) -> None:
        """Append float32 (channels, samples) audio."""
        ...

    def close(self) -> None:
        """Finish the file and move it into place."""
        ...

    def abort(self) -> None:
        """Remove everything written so far, temporary files included; idempotent."""
        ...


class SongWriter(Protocol):
    """One file holding every stem of a song (an archive, a multitrack container), opened by an
    exporter whose `per_song` is true. Peaks, `keeps_peaks`, close() and abort() are as for `StemWriter`."""

    keeps_peaks: bool = False

    def write_stems(self, blocks: Mapping[str, np.ndarray]) -> None:
        """Append the same stretch of every stem: `blocks[stem]` is float32 (channels, samples), and
        every stem named in `open(..., stems=...)` comes with the same number of samples."""
        ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class Exporter(Protocol):
    """What a `register_exporters` hook registers, under its format name ("wav", "flac", "npz", ...).

    Core calls `open` with the song's name and all its stems' names (target first, then "rest"),
    always as keywords. With `per_song` false (one file per stem) it opens one `StemWriter` per
    stem, `stem` naming it and `path` following `--filename`; with `per_song` true it opens one
    `SongWriter` per song, with `stem` None and `path` the song's file (`--filename` without
    `{stem}`). Either way `path` is the final name: the writer writes elsewhere until close()
    (`unmix.core.files.AtomicFile`), and abort() leaves nothing behind. An exporter whose `open`
    does not take these keywords (written before they existed) is refused by name before any song
    is separated, not called.
    """

    name: str
    extension: str
    per_song: bool = False
    """One file per song holding every stem, instead of one file per stem. Optional: default False."""

    def open(self, path: Path, sample_rate: int, channels: int, options: ExportOptions, *, song: str,
             stem: str | None, stems: tuple[str, ...]) -> StemWriter | SongWriter: ...


class Runtime(Protocol):
    """What a `register_runtimes` hook registers: separates with an exported model file, without the
    framework that trained it (`unmix predict --model FILE`, `unmix.core.api.create_engine(FILE)`)."""

    suffix: str
    """The file suffix it reads (".onnx"); core picks the runtime by a model file's suffix."""

    def read_configuration(self, path: Path) -> Mapping[str, object]:
        """The merged configuration the file was exported with (a run folder's configuration.jsonc as
        data). A file that is not such a model raises `UnmixError` saying what it is and how to make one."""
        ...

    def load(self, path: Path, settings: Configuration) -> SeparationModel:
        """A model whose `predict` computes what the exported one did; its training methods may refuse."""
        ...
