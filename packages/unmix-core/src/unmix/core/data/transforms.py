"""Transforms: how a window of spectrogram becomes a model's input and target, and back.

A transform sits between the audio side (complex STFT windows, `unmix.core.data.windows`) and a
model. Training asks it for `training_pair(mix_window, target_window)`; prediction asks for
`prepare_input(mix_window)`, runs the model, and turns the output back into a complex estimate of
the target with `untransform(mix_window, prediction)`, weighted by `synthesis_weights()` for the
overlap-add. Complex windows are (channels, bins, frames) like `unmix.core.data.audio.stft`; model
arrays are float32 (bins, frames, channels), channels last as Keras expects (the PyTorch backend
moves the axis itself). Every method also accepts leading batch axes, so the prediction engine can
transform a whole batch of windows in one call.

The built-in transforms (registered by `unmix.core.builtin_plugin`, picked by
`transformation.name`) are the seed's, with its bugs fixed (docs/original-system.md §4.4 and §9):

- `train_window_predict_mask` (production): input |mix|, target |target|, both scaled by the
  input's normaliser; the model outputs a mask that the loss multiplies with the input.
- `train_window_predict_mask_hann`: the same training; inference overlap-adds with a periodic
  Hann (the seed's symmetric np.hanning left a ripple), so step must divide size at least twice.
- `train_window_predict_mask_phase_sensitive` (not the seed's): the same input and inference; the
  target is the part of |target| along the mix's phase, which the mix-phase estimate can reach.
- `window`: the model predicts the target's magnitude itself.
- `mask`: the target is the ratio mask clip(|target| / |mix|, 0, 1) (the seed computed it from
  the mix twice, so its target was always 1).
- `mask-ibm`: the target is the ideal binary mask |target| >= |rest|.

`waveform` (not the seed's) is the other kind of model: the network takes and returns samples,
(channels, size) chunks of the mix and of the target, and the separation engine cross-fades
chunks `step` samples apart (`unmix.core.separation.engine`). It has no STFT, so
`spectrogram_generation` and the normalizer do not apply to it.

The two mask transforms keep the seed's shape: a `size`-frame context window in, the mask of its
centre `step` frames out (the seed's `mask` models end in Dense(bins * step)); the others predict
the whole window and inference keeps its centre `step` frames (or the Hann-weighted whole).

Normalisers (`transformation.options.normalizer`), per window, from the input's magnitudes:
`norm_max` divides input and magnitude targets by the input's maximum; `norm_min_max` maps the
input's [min, max] to [0, 1] and applies the same map to the target (the seed used the
normalised input as the target); `""` leaves magnitudes as they are. A silent window (max 0) is
left unscaled rather than divided by zero. Masks are scale-free and never normalised.

This module imports only numpy and attrs, so that registering the transforms costs nothing.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np

from unmix.core.errors import ConfigurationError

if TYPE_CHECKING:
    from unmix.core.config.schema import Configuration

__all__ = [
    "BUILTIN_TRANSFORMS",
    "MaskIbmTransform",
    "MaskTransform",
    "NORMALIZERS",
    "Transform",
    "TrainWindowPredictMask",
    "TrainWindowPredictMaskHann",
    "WaveformTransform",
    "WindowTransform",
    "crossfade_weights",
    "create_transform",
]

NORMALIZERS = ("norm_max", "norm_min_max", "")
_WINDOW_AXES = (-3, -2, -1)


def _positive(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigurationError(f"transformation.options.{attribute.name} must be a positive integer, got {value!r}")


def _known_normalizer(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in NORMALIZERS:
        known = ", ".join(repr(name) for name in NORMALIZERS)
        raise ConfigurationError(f"transformation.options.normalizer must be one of {known}, got {value!r}")


def _channels_last(array: np.ndarray) -> np.ndarray:
    """(..., channels, bins, frames) to a contiguous float32 (..., bins, frames, channels)."""
    return np.ascontiguousarray(np.moveaxis(array, -3, -1), dtype=np.float32)


def _channels_first(array: np.ndarray) -> np.ndarray:
    """A model array (..., bins, frames, channels) back to (..., channels, bins, frames)."""
    return np.moveaxis(np.asarray(array, dtype=np.float32), -1, -3)


@attrs.frozen
class Transform(abc.ABC):
    """Turns complex STFT windows into model arrays and model outputs back into complex windows.

    Subclasses set `name` (what configurations use), `model_output` ("mask" or "magnitude": what
    the model's last layer means) and `training_target` ("magnitude" or "mask": what the training
    target array holds, so a loss knows whether to multiply the prediction with the input first).
    `kind` says which networks it feeds: "spectrogram" (STFT windows, the default) or "waveform"
    (sample chunks, `WaveformTransform`); data and separation take the matching path.
    A third-party transform subclasses this and registers itself through the
    `register_transforms` hook exactly like the built-in ones.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "spectrogram"
    model_output: ClassVar[str] = "mask"
    training_target: ClassVar[str] = "magnitude"

    size: int = attrs.field(default=64, validator=_positive)
    step: int = attrs.field(default=64, validator=_positive)
    normalizer: str = attrs.field(default="norm_max", validator=_known_normalizer)

    @classmethod
    def from_configuration(cls, configuration: Configuration) -> Transform:
        """Build the transform from `transformation.options`."""
        options = configuration.transformation.options
        return cls(size=options.size, step=options.step, normalizer=options.normalizer)

    # ---- shapes -------------------------------------------------------------------------

    @property
    def output_columns(self) -> slice:
        """The window columns that the target and the prediction cover (all of them by default)."""
        return slice(0, self.size)

    @property
    def output_width(self) -> int:
        return self.output_columns.stop - self.output_columns.start

    def input_shape(self, bins: int, channels: int) -> tuple[int, int, int]:
        """One model input, (bins, size, channels)."""
        return (bins, self.size, channels)

    def target_shape(self, bins: int, channels: int) -> tuple[int, int, int]:
        """One training target and one model output, (bins, output_width, channels)."""
        return (bins, self.output_width, channels)

    # ---- normalisation ------------------------------------------------------------------

    def _input_scale(self, mix_magnitude: np.ndarray) -> tuple[np.ndarray | float, np.ndarray | float]:
        """(offset, scale) of each window so that (magnitude - offset) / scale is the model's input."""
        if self.normalizer == "":
            return 0.0, 1.0
        maximum = mix_magnitude.max(axis=_WINDOW_AXES, keepdims=True)
        if self.normalizer == "norm_max":
            offset = np.zeros_like(maximum)
            spread = maximum
        else:
            offset = mix_magnitude.min(axis=_WINDOW_AXES, keepdims=True)
            spread = maximum - offset
        scale = np.where(spread > 0, spread, np.float32(1.0)).astype(np.float32)
        return offset, scale

    def _normalized(
        self, magnitude: np.ndarray, offset: np.ndarray | float, scale: np.ndarray | float
    ) -> np.ndarray:
        if self.normalizer == "":
            return magnitude
        return (magnitude - offset) / scale

    # ---- training and inference ---------------------------------------------------------

    def prepare_input(self, mix_window: np.ndarray) -> np.ndarray:
        """The model input for a complex mix window: its normalised magnitude, channels last."""
        mix_magnitude = np.abs(mix_window)
        offset, scale = self._input_scale(mix_magnitude)
        return _channels_last(self._normalized(mix_magnitude, offset, scale))

    def training_pair(self, mix_window: np.ndarray, target_window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(model input, training target) for a complex mix window and the target stem's window."""
        mix_magnitude = np.abs(mix_window)
        offset, scale = self._input_scale(mix_magnitude)
        model_input = _channels_last(self._normalized(mix_magnitude, offset, scale))
        target = self._target(mix_window, mix_magnitude, target_window, offset, scale)
        return model_input, _channels_last(target)

    def _target(
        self,
        mix_window: np.ndarray,
        mix_magnitude: np.ndarray,
        target_window: np.ndarray,
        offset: np.ndarray | float,
        scale: np.ndarray | float,
    ) -> np.ndarray:
        """The training target, channels first, over `output_columns`: by default the target's
        magnitude under the input's normaliser; mask transforms override it."""
        return self._normalized(np.abs(target_window), offset, scale)

    @abc.abstractmethod
    def untransform(self, mix_window: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        """Complex64 (..., channels, bins, output_width) estimate of the target from the model's output.

        The phase is always the mix's: phase is never modelled (docs/original-system.md §3.1).
        """

    def synthesis_weights(self) -> np.ndarray:
        """Per-column float32 weights over `output_columns` for overlap-adding consecutive windows.

        Windows sit `step` frames apart; with these weights every frame's weights sum to one. The
        default keeps the `step` columns around the window's centre, each frame taken from the
        window it is nearest the centre of. At a song's edges fewer windows overlap, so an engine
        that also adds up the weights it applied and divides by them stays exact there.
        """
        if self.step > self.output_width:
            raise ConfigurationError(
                f"transformation.options.step ({self.step}) is larger than the predicted width "
                f"({self.output_width}): frames between windows would get no prediction; use step <= size"
            )
        weights = np.zeros(self.output_width, dtype=np.float32)
        start = self.output_width // 2 - self.step // 2
        weights[start:start + self.step] = 1.0
        return weights

    def _masked_mix(self, mix_window: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        # clip(mask) * |mix| * exp(i * angle(mix)) is clip(mask) * mix, without the round trip
        # through polar form; a mask of 1 returns the mix exactly and 0 returns silence.
        mask = np.clip(_channels_first(prediction), 0.0, 1.0)
        return (mask * mix_window[..., self.output_columns]).astype(np.complex64, copy=False)


@attrs.frozen
class TrainWindowPredictMask(Transform):
    """The production transform: learn a mask whose product with |mix| matches |target|."""

    name: ClassVar[str] = "train_window_predict_mask"
    model_output: ClassVar[str] = "mask"
    training_target: ClassVar[str] = "magnitude"

    def untransform(self, mix_window: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        return self._masked_mix(mix_window, prediction)


@attrs.frozen
class TrainWindowPredictMaskPhaseSensitive(TrainWindowPredictMask):
    """The production transform with a phase-sensitive target (Erdogan et al. 2015).

    The estimate always carries the mix's phase, so where the target's phase differs from the
    mix's, matching |target| overshoots: only the part of the target along the mix's phase,
    |target| cos(phase difference), lowers the error of the complex estimate that whole-track SDR
    measures. That part, clipped to [0, |mix|] (a mask reaches no further), is the training target.
    """

    name: ClassVar[str] = "train_window_predict_mask_phase_sensitive"

    def _target(
        self,
        mix_window: np.ndarray,
        mix_magnitude: np.ndarray,
        target_window: np.ndarray,
        offset: np.ndarray | float,
        scale: np.ndarray | float,
    ) -> np.ndarray:
        along_mix = np.real(target_window * np.conj(mix_window)) / np.maximum(mix_magnitude, np.float32(1e-12))
        return self._normalized(np.clip(along_mix, 0.0, mix_magnitude).astype(np.float32), offset, scale)


@attrs.frozen
class TrainWindowPredictMaskHann(TrainWindowPredictMask):
    """The production training with a Hann-weighted overlap-add at inference.

    Every window's whole estimate contributes, faded in and out, instead of only its centre
    `step` columns: smoother joins between windows for `size / step` times the model calls.
    """

    name: ClassVar[str] = "train_window_predict_mask_hann"

    def __attrs_post_init__(self) -> None:
        if self.size % self.step or self.size // self.step < 2:
            raise ConfigurationError(
                f"{self.name} overlap-adds Hann windows, so transformation.options.step must divide "
                f"transformation.options.size at least twice (got size {self.size}, step {self.step}); "
                f"use e.g. step {max(1, self.size // 2)}"
            )

    def synthesis_weights(self) -> np.ndarray:
        # A periodic Hann of length size, shifted by a step that divides size, sums to
        # size / (2 * step) everywhere; dividing by that makes the sum exactly one.
        columns = np.arange(self.size)
        hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * columns / self.size)
        return (hann * (2.0 * self.step / self.size)).astype(np.float32)


@attrs.frozen
class WindowTransform(Transform):
    """The model predicts the target's (normalised) magnitude directly."""

    name: ClassVar[str] = "window"
    model_output: ClassVar[str] = "magnitude"
    training_target: ClassVar[str] = "magnitude"

    @classmethod
    def from_configuration(cls, configuration: Configuration) -> Transform:
        if configuration.transformation.normalizers.zmuv.enabled:
            # The seed's zmuv statistics were computed wrongly and applied with the wrong file
            # (docs/original-system.md §9.3); training on them silently would be worse than refusing.
            raise ConfigurationError(
                "transformation.normalizers.zmuv is not supported; set transformation.normalizers.zmuv.enabled "
                "to false (the per-window normalizer option still applies)"
            )
        return super().from_configuration(configuration)

    def untransform(self, mix_window: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        mix_part = mix_window[..., self.output_columns]
        mix_magnitude = np.abs(mix_window)
        offset, scale = self._input_scale(mix_magnitude)
        magnitude = np.maximum(_channels_first(prediction) * scale + offset, 0.0)
        part_magnitude = np.abs(mix_part)
        phase = np.divide(mix_part, part_magnitude, out=np.ones_like(mix_part), where=part_magnitude > 0)
        return (magnitude * phase).astype(np.complex64, copy=False)


@attrs.frozen
class _CentreMaskTransform(Transform):
    """A mask for the centre `step` columns of a `size`-column context window."""

    model_output: ClassVar[str] = "mask"
    training_target: ClassVar[str] = "mask"

    def __attrs_post_init__(self) -> None:
        if self.step > self.size:
            raise ConfigurationError(
                f"{self.name} predicts the mask of the centre transformation.options.step columns of each "
                f"window, so step must be at most size (got size {self.size}, step {self.step})"
            )

    @property
    def output_columns(self) -> slice:
        start = self.size // 2 - self.step // 2
        return slice(start, start + self.step)

    def synthesis_weights(self) -> np.ndarray:
        return np.ones(self.step, dtype=np.float32)

    def untransform(self, mix_window: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        return self._masked_mix(mix_window, prediction)


@attrs.frozen
class MaskTransform(_CentreMaskTransform):
    """The target is the ratio mask clip(|target| / |mix|, 0, 1); a silent mix bin gets 0."""

    name: ClassVar[str] = "mask"

    def _target(
        self,
        mix_window: np.ndarray,
        mix_magnitude: np.ndarray,
        target_window: np.ndarray,
        offset: np.ndarray | float,
        scale: np.ndarray | float,
    ) -> np.ndarray:
        columns = self.output_columns
        mix_part = mix_magnitude[..., columns]
        target_part = np.abs(target_window[..., columns])
        ratio = np.divide(target_part, mix_part, out=np.zeros_like(target_part), where=mix_part > 0)
        return np.clip(ratio, 0.0, 1.0)


@attrs.frozen
class MaskIbmTransform(_CentreMaskTransform):
    """The target is the ideal binary mask: 1 where the target is at least as loud as the rest."""

    name: ClassVar[str] = "mask-ibm"

    def _target(
        self,
        mix_window: np.ndarray,
        mix_magnitude: np.ndarray,
        target_window: np.ndarray,
        offset: np.ndarray | float,
        scale: np.ndarray | float,
    ) -> np.ndarray:
        columns = self.output_columns
        target_part = target_window[..., columns]
        # The STFT is linear, so the rest's window is the mix's minus the target's: no third FFT.
        rest_part = mix_window[..., columns] - target_part
        return (np.abs(target_part) >= np.abs(rest_part)).astype(np.float32)


def crossfade_weights(size: int, step: int) -> np.ndarray:
    """Float32 weights over a chunk of `size` samples for chunks `step` samples apart.

    A raised-cosine fade in over the first `fade = min(size - step, size // 2)` samples, one in the
    middle, the mirror image fading out. The fade samples its curve between the sample points, so
    no weight is zero (a sample that only one chunk covers, at a song's start, is still that
    chunk's) and fade in + fade out = sin^2 + cos^2 = 1 sample by sample. With `step >= size / 2`
    at most two chunks meet and the weights sum to one everywhere; denser chunks meet several at a
    time, and the engine divides by the weights' sum, as it does at a song's edges.
    """
    if not 1 <= step <= size:
        raise ConfigurationError(f"transformation.options.step ({step}) must be between 1 and size ({size}): "
                                 "samples between chunks would get no prediction")
    weights = np.ones(size, dtype=np.float64)
    fade = min(size - step, size // 2)
    if fade:
        fade_in = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2
        weights[:fade] = fade_in
        weights[size - fade:] = fade_in[::-1]
    return weights.astype(np.float32)


@attrs.frozen
class WaveformTransform(Transform):
    """Samples in, samples out: for waveform networks, which find the target in the mix's waveform.

    Model input and training target are float32 (channels, size) chunks of the mix and of the
    target stem, as they are: the normalizer does not apply (samples are already within [-1, 1], and
    a per-chunk gain would make neighbouring chunks disagree where they are cross-faded). The
    arrays handed to `training_pair`, `prepare_input` and `untransform` are sample chunks, not
    STFT windows; leading batch axes are kept.
    """

    name: ClassVar[str] = "waveform"
    kind: ClassVar[str] = "waveform"
    model_output: ClassVar[str] = "waveform"
    training_target: ClassVar[str] = "waveform"

    def __attrs_post_init__(self) -> None:
        crossfade_weights(self.size, self.step)

    def input_shape(self, bins: int, channels: int) -> tuple[int, int]:
        """One model input, (channels, size): `bins` does not apply to samples."""
        return (channels, self.size)

    def target_shape(self, bins: int, channels: int) -> tuple[int, int]:
        return (channels, self.size)

    def prepare_input(self, mix_window: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(mix_window, dtype=np.float32)

    def training_pair(self, mix_window: np.ndarray, target_window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.prepare_input(mix_window), np.ascontiguousarray(target_window, dtype=np.float32)

    def untransform(self, mix_window: np.ndarray, prediction: np.ndarray) -> np.ndarray:
        """The network's chunk is the target's samples already."""
        return np.asarray(prediction, dtype=np.float32)

    def synthesis_weights(self) -> np.ndarray:
        return crossfade_weights(self.size, self.step)


BUILTIN_TRANSFORMS: tuple[type[Transform], ...] = (
    TrainWindowPredictMask,
    TrainWindowPredictMaskHann,
    TrainWindowPredictMaskPhaseSensitive,
    WindowTransform,
    MaskTransform,
    MaskIbmTransform,
    WaveformTransform,
)


def create_transform(configuration: Configuration) -> Transform:
    """The transform `transformation.name` names, from whichever plugin registered it."""
    from unmix.core.plugins import get

    transform_class = get("transforms", configuration.transformation.name)
    return transform_class.from_configuration(configuration)
