"""One worker of the multi-worker test: `python -m tests.tf.multi_worker_train OUTPUT.npz` with TF_CONFIG set.

Trains the tiny hourglass (with batch norm, so non-trainable statistics are covered too) for two
steps on the same synthetic data as its peer, then writes its weights and step count.
"""

from __future__ import annotations

import sys

import numpy as np

from tests.tiny_models import build, half_gain_batches, tiny_settings

OPTIONS = {"stacks": 2, "initial_convolutions": {"batchnormalization": True},
           "hg_module": {"filters": 8, "batchnormalization": True}}


def main(output: str) -> None:
    settings = tiny_settings(options=OPTIONS, distribution="multi_worker", loss_function="L11_loss")
    model = build(settings)
    metrics = model.train_epoch(half_gain_batches(2, seed=7), 2, lambda step, running: None)
    weights = model.network.get_weights()
    np.savez(output, *weights, iterations=model.iterations, loss=metrics["loss"])


if __name__ == "__main__":
    main(sys.argv[1])
