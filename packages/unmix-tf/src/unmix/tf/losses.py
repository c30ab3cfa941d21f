"""TensorFlow formulas for the losses and metrics that `unmix.core.models.losses` declares.

Which names exist, how they are looked up, how replicas' values combine and which losses see
the network input are declared once in core, with the clipping constants; this module holds only
the tensor arithmetic.
`unmix.tf.model` trains with its own GradientTape step that hands the input batch to the loss,
so the network itself stays a plain mask predictor and `predict()` returns the raw mask.
The Keras kit trains no waveform networks, so the waveform losses have no formula here.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from unmix.core.errors import ModelError
from unmix.core.models.losses import (
    EPSILON,
    SQRT_FLOOR,
    Loss,
    Metric,
    bind_losses,
    bind_metrics,
    find_loss,
    find_metric,
)

LossFunction = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


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


def _masked_squared_error(targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(targets - inputs * outputs))


LOSS_FORMULAS: dict[str, LossFunction] = {
    "mean_squared_error": _mean_squared_error,
    "mean_absolute_error": _mean_absolute_error,
    "mean_squared_log_error": _mean_squared_log_error,
    "squared_hinge": _squared_hinge,
    "root_mean_squared_error": _root_mean_squared_error,
    "binary_crossentropy": _binary_crossentropy,
    "euclidean_loss": _euclidean_loss,
    "L11_loss": _l11_loss,
    "L11_loss_mean": _l11_loss_mean,
    "masked_squared_error": _masked_squared_error,
}

METRIC_FORMULAS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "mean_pred": tf.reduce_mean,
    "max_pred": tf.reduce_max,
}

LOSSES: dict[str, Loss] = bind_losses(LOSS_FORMULAS, waveform=False)
METRICS: dict[str, Metric] = bind_metrics(METRIC_FORMULAS)


def get_loss(name: str) -> Loss:
    """The configured loss with this backend's formula; an unknown name is core's one-line error."""
    definition = find_loss(name)
    if definition.name not in LOSSES:
        raise ModelError(f"training.loss_function '{name}' is a {definition.kind} loss, and the tensorflow backend "
                         f"trains no {definition.kind} networks; use training.backend \"torch\"")
    return LOSSES[definition.name]


def get_metric(name: str) -> Metric:
    """The configured metric with this backend's formula; an unknown name is core's one-line error."""
    return METRICS[find_metric(name).name]
