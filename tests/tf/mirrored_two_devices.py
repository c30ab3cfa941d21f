"""Run as `python -m tests.tf.mirrored_two_devices`: a batch split over two devices trains like one device.

TensorFlow can split the CPU into logical devices only before it first runs, hence a process of
its own. L11_loss_mean, so each replica's loss is weighted by its share of the batch. One step
on a batch of 5 (split 3 + 2), then prints as JSON both runs' metrics and the
largest relative difference of the optimiser's moments. The moments are what shows a wrong
gradient scale: Adam's weight updates are scale-invariant, and their signs flip on round-off for
gradients near zero, so weights are no fair comparison.
"""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import tensorflow as tf

from tests.tiny_models import INPUT_SHAPE, build, half_gain_batches, tiny_settings


def main() -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    metrics = ["mean_pred", "max_pred"]
    one = build(tiny_settings(loss_function="L11_loss_mean", metrics=metrics), INPUT_SHAPE)
    # On a machine without GPUs MirroredStrategy() takes the CPU alone; hand it both logical CPUs.
    two_cpus = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with mock.patch.object(tf.distribute, "MirroredStrategy", lambda: two_cpus):
        two = build(tiny_settings(loss_function="L11_loss_mean", metrics=metrics, distribution="mirrored"), INPUT_SHAPE)
    two.network.set_weights(one.network.get_weights())
    results = [model.train_epoch(half_gain_batches(1, batch_size=5), 1, lambda step, running: None)
               for model in (one, two)]
    pairs = zip(one.optimizer.variables, two.optimizer.variables, strict=True)
    difference = max(_relative_difference(first.numpy(), second.numpy()) for first, second in pairs)
    print(json.dumps({"replicas": two.strategy.num_replicas_in_sync, "difference": difference,
                      "one": results[0], "two": results[1]}))


def _relative_difference(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.abs(first - second).max() / max(float(np.abs(first).max()), 1e-12))


if __name__ == "__main__":
    main()
