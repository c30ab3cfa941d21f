"""Losses and metrics by the seed's names.

Every loss takes (targets, outputs, inputs), not Keras' (y_true, y_pred): the seed's production
loss `L11_loss` multiplies the predicted mask by the network input (`model.input` in the seed's
closure). `unmix.tf.model` trains with its own GradientTape step that hands the input batch to
the loss, so the network itself stays a plain mask predictor and `predict()` returns the raw
mask. Losses that do not need the input ignore it.

`summed` marks losses whose value grows with the batch (the seed's L11_loss sums over batch,
frequency, time and channel): under tf.distribute their per-replica values are added, while the
others are weighted by each replica's share of the batch, so the distributed loss equals the
one-device loss. The two square-root losses do not split exactly across replicas; with one
device (the usual case) they are exact.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import attrs
import tensorflow as tf

from unmix.core.errors import ModelError

LossFunction = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]

# Keras' epsilon: the clipping the seed's Keras 2 losses applied before logarithms.
EPSILON = 1e-7
# Below this, a square root's gradient is infinite; clamping keeps a perfect fit from producing NaN weights.
SQRT_FLOOR = 1e-12


@attrs.frozen
class Loss:
    function: LossFunction
    summed: bool = False
    # Multiplies the output by the input, so the network must output windows of the input's shape.
    uses_input: bool = False


@attrs.frozen
class Metric:
    function: Callable[[tf.Tensor], tf.Tensor]
    # How replicas' values combine: "mean" weights by each replica's share of the batch.
    reduction: str = "mean"


def _mean_squared_error(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(outputs - targets))


def _mean_absolute_error(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.abs(outputs - targets))


def _mean_squared_log_error(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    first = tf.math.log(tf.maximum(outputs, EPSILON) + 1.0)
    second = tf.math.log(tf.maximum(targets, EPSILON) + 1.0)
    return tf.reduce_mean(tf.square(first - second))


def _squared_hinge(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(tf.maximum(1.0 - targets * outputs, 0.0)))


def _root_mean_squared_error(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(outputs - targets)), SQRT_FLOOR))


def _binary_crossentropy(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    probabilities = tf.clip_by_value(outputs, EPSILON, 1.0 - EPSILON)
    entropy = targets * tf.math.log(probabilities) + (1.0 - targets) * tf.math.log(1.0 - probabilities)
    return -tf.reduce_mean(entropy)


def _euclidean_loss(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(targets - outputs)), SQRT_FLOOR))


def _l11_loss(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.abs(targets - inputs * outputs))


def _l11_loss_mean(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.abs(targets - inputs * outputs))


LOSSES: dict[str, Loss] = {
    "mean_squared_error": Loss(_mean_squared_error),
    "mean_absolute_error": Loss(_mean_absolute_error),
    "mean_squared_log_error": Loss(_mean_squared_log_error),
    "squared_hinge": Loss(_squared_hinge),
    "root_mean_squared_error": Loss(_root_mean_squared_error),
    "binary_crossentropy": Loss(_binary_crossentropy),
    # The seed's K.mean over all axes; Keras 2's mean_squared_error averaged the last axis first,
    # which gives the same number for equally sized windows.
    "mean_squared_error_noaxis": Loss(_mean_squared_error),
    "euclidean_loss": Loss(_euclidean_loss, summed=True),
    "L11_loss": Loss(_l11_loss, summed=True, uses_input=True),
    # Not in the seed: L11_loss divided by the number of values, so the learning rate that suits
    # it does not depend on batch size, window size or mono/stereo.
    "L11_loss_mean": Loss(_l11_loss_mean, uses_input=True),
}

METRICS: dict[str, Metric] = {
    "mean_pred": Metric(tf.reduce_mean),
    "max_pred": Metric(tf.reduce_max, reduction="max"),
}


def get_loss(name: str) -> Loss:
    return LOSSES[_find(name, LOSSES, "training.loss_function", "loss", "losses")]


def get_metric(name: str) -> Metric:
    return METRICS[_find(name, METRICS, "training.metrics", "metric", "metrics")]


def _find(name: str, known: dict, key: str, kind: str, kinds: str) -> str:
    """The exact name, else a case-insensitive match: configurations write `l11_loss` as often as `L11_loss`."""
    if name in known:
        return name
    for candidate in known:
        if candidate.lower() == str(name).lower():
            return candidate
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ModelError(f"{key}: unknown {kind} '{name}'{hint}; known {kinds}: {', '.join(known)}")
