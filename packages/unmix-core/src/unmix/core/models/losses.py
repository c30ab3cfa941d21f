"""The losses and epoch metrics a configuration can name, declared once for every backend.

Each backend supplies only the tensor formula for each name (`bind_losses`, `bind_metrics`); which
names exist, how they are spelled, how their values combine and whether they see the network
input are decided here, so the two backends cannot drift apart.

Every loss takes (targets, outputs, inputs), not Keras' (y_true, y_pred): the seed's production
loss `L11_loss` multiplies the predicted mask by the network input (`model.input` in the seed's
Keras closure), so the network stays a plain mask predictor and `predict()` returns the raw mask.
Losses that do not need the input ignore it.

A loss's `reduction` says how values of several devices or processes combine. "sum" marks losses
whose value grows with the batch (the seed's L11_loss sums over batch, frequency, time and
channel): their per-replica values are added, while "mean" losses are weighted by each replica's
share of the batch, so the distributed loss equals the one-device loss. The two square-root
losses do not split exactly across replicas; with one device (the usual case) they are exact.

A loss's `kind` says which networks it suits (`unmix.core.models.networks`): "spectrogram" losses
multiply a mask by the input window, "waveform" losses compare (batch, channels, samples) chunks
of samples, and the rest ("any") compare output and target value by value, whatever they hold.
The two waveform losses:

- `waveform_l1`: the mean absolute difference of the samples (`mean_absolute_error`'s formula,
  under the name a waveform configuration reads naturally);
- `multi_resolution_stft`: for each resolution, the spectral convergence
  ||  |T| - |O|  ||_F / || |T| ||_F plus the mean absolute difference of log magnitudes, averaged
  over the resolutions (Yamamoto et al., Parallel WaveGAN, 2020). Resolutions are FFT sizes 512,
  1024 and 2048 with a hop of a quarter and a periodic Hann window, those that fit in the chunk;
  a chunk shorter than 512 samples gets one, the largest power of two it holds
  (`stft_loss_resolutions`). Magnitudes are floored at sqrt(EPSILON) so that silence has a finite
  logarithm and gradient.

Only backends that train waveform networks implement the waveform formulas (the torch backend;
`SPECTROGRAM_LOSS_FORMULAS` is what the others implement).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from unmix.core.errors import ModelError
from unmix.core.models.names import NameField, find_name

LOSS_FIELD = NameField("training.loss_function", "loss", "losses")
METRIC_FIELD = NameField("training.metrics", "metric", "metrics")

# Keras' epsilon: the clipping the seed's Keras 2 losses applied before logarithms.
EPSILON = 1e-7
# Below this, a square root's gradient is infinite; clamping keeps a perfect fit from producing NaN weights.
SQRT_FLOOR = 1e-12


@attrs.frozen
class LossDefinition:
    """One loss a configuration can name, without its formula."""

    name: str
    reduction: Literal["mean", "sum"] = "mean"
    # Multiplies the output by the input, so the network must output windows of the input's shape.
    uses_input: bool = False
    # Another loss whose formula gives this one's value, so a backend writes that formula once.
    same_as: str | None = None
    # The networks it suits: "spectrogram", "waveform", or "any" (see the module docstring).
    kind: Literal["any", "spectrogram", "waveform"] = "any"

    @property
    def summed(self) -> bool:
        return self.reduction == "sum"

    @property
    def formula(self) -> str:
        """The name under which each backend implements this loss's formula."""
        return self.same_as or self.name


@attrs.frozen
class MetricDefinition:
    """One epoch metric a configuration can name, computed from the network output alone.

    Across the batches of an epoch the backends still differ for "max": the Keras backend averages
    the batches' maxima, the torch backend takes the largest (kept as each backend reported it).
    """

    name: str
    # How values of several replicas or processes combine: "mean" weights by batch share, "max" takes the largest.
    reduction: Literal["mean", "max"] = "mean"


LOSSES: tuple[LossDefinition, ...] = (
    LossDefinition("mean_squared_error"),
    LossDefinition("mean_absolute_error"),
    LossDefinition("mean_squared_log_error"),
    LossDefinition("squared_hinge"),
    LossDefinition("root_mean_squared_error"),
    LossDefinition("binary_crossentropy"),
    # The seed's K.mean over all axes; Keras 2's mean_squared_error averaged the last axis first,
    # which gives the same number for equally sized windows.
    LossDefinition("mean_squared_error_noaxis", same_as="mean_squared_error"),
    LossDefinition("euclidean_loss", reduction="sum"),
    LossDefinition("L11_loss", reduction="sum", uses_input=True, kind="spectrogram"),
    # Not in the seed: L11_loss divided by the number of values, so the learning rate that suits
    # it does not depend on batch size, window size or mono/stereo.
    LossDefinition("L11_loss_mean", uses_input=True, kind="spectrogram"),
    # Not in the seed: the squared counterpart of L11_loss_mean. Its minimum is the conditional mean
    # of the target rather than the median, the estimate that minimises the squared error which
    # whole-track SDR measures; for the band hourglass it measured worse (docs/models.md).
    LossDefinition("masked_squared_error", uses_input=True, kind="spectrogram"),
    LossDefinition("waveform_l1", same_as="mean_absolute_error", kind="waveform"),
    LossDefinition("multi_resolution_stft", kind="waveform"),
)

STFT_LOSS_FFT_SIZES = (512, 1024, 2048)
"""The resolutions of `multi_resolution_stft`, each with a hop of a quarter of its FFT size."""

METRICS: tuple[MetricDefinition, ...] = (
    MetricDefinition("mean_pred"),
    MetricDefinition("max_pred", reduction="max"),
)

LOSS_FORMULAS: frozenset[str] = frozenset(loss.formula for loss in LOSSES)
"""The names a backend must implement a formula for: one per loss, aliases (`same_as`) excepted."""

SPECTROGRAM_LOSS_FORMULAS: frozenset[str] = frozenset(loss.formula for loss in LOSSES if loss.kind != "waveform")
"""The formulas a backend without waveform networks implements: every loss but the waveform ones."""

METRIC_FORMULAS: frozenset[str] = frozenset(metric.name for metric in METRICS)

_LOSSES_BY_NAME = {loss.name: loss for loss in LOSSES}
_METRICS_BY_NAME = {metric.name: metric for metric in METRICS}


@attrs.frozen
class Loss:
    """A loss of the table with one backend's formula: what that backend's training step calls."""

    definition: LossDefinition
    function: Callable[..., Any]

    @property
    def summed(self) -> bool:
        return self.definition.summed

    @property
    def uses_input(self) -> bool:
        return self.definition.uses_input


@attrs.frozen
class Metric:
    """A metric of the table with one backend's formula."""

    definition: MetricDefinition
    function: Callable[..., Any]

    @property
    def reduction(self) -> str:
        return self.definition.reduction


def find_loss(name: str) -> LossDefinition:
    """The loss a configuration names, or the one-line error with a did-you-mean."""
    return _LOSSES_BY_NAME[find_name(name, list(_LOSSES_BY_NAME), LOSS_FIELD)]


def find_metric(name: str) -> MetricDefinition:
    """The metric a configuration names, or the one-line error with a did-you-mean."""
    return _METRICS_BY_NAME[find_name(name, list(_METRICS_BY_NAME), METRIC_FIELD)]


def bind_losses(formulas: Mapping[str, Callable[..., Any]], *, waveform: bool = True) -> dict[str, Loss]:
    """Every loss of the table by name, each with the backend's formula for it; without the
    waveform losses for a backend that trains no waveform networks (`waveform=False`)."""
    return {loss.name: Loss(loss, formulas[loss.formula]) for loss in LOSSES if waveform or loss.kind != "waveform"}


def bind_metrics(formulas: Mapping[str, Callable[..., Any]]) -> dict[str, Metric]:
    """Every metric of the table by name, each with the backend's formula for it."""
    return {metric.name: Metric(metric, formulas[metric.name]) for metric in METRICS}


def check_loss_fits_kind(loss_name: str, model: str, kind: str) -> None:
    """Refuse, in one line, a loss made for the other kind of network than `model`'s."""
    loss = find_loss(loss_name)
    if loss.kind in ("any", kind):
        return
    suited = ", ".join(other.name for other in LOSSES if other.kind == kind)
    if loss.kind == "spectrogram":
        raise ModelError(f"training.loss_function '{loss_name}' multiplies the output by the input as a mask, but "
                         f"model '{model}' is a {kind} network; use {suited}, or a loss that compares output and "
                         "target such as mean_absolute_error")
    raise ModelError(f"training.loss_function '{loss_name}' compares waveforms, but model '{model}' is a {kind} "
                     f"network; use {suited}, or a loss that compares output and target such as mean_squared_error")


def stft_loss_resolutions(samples: int) -> tuple[tuple[int, int], ...]:
    """(FFT size, hop) of each resolution `multi_resolution_stft` compares chunks of `samples` samples at."""
    sizes = [size for size in STFT_LOSS_FFT_SIZES if size <= samples]
    if not sizes:
        sizes = [1 << (max(int(samples), 2).bit_length() - 1)]
    return tuple((size, max(1, size // 4)) for size in sizes)


def check_output_fits_loss(loss_name: str, model: str, input_shape: Sequence[int], output_shape: Sequence[int]) -> None:
    """A loss that multiplies the output by the input needs an output window of the input's shape."""
    if find_loss(loss_name).uses_input and output_shape != input_shape:
        raise ModelError(
            f"training.loss_function '{loss_name}' multiplies the output by the input window, but "
            f"model '{model}' outputs {output_shape} for inputs {input_shape}: use a loss such as mean_squared_error"
        )
