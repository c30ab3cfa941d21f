"""One worker of the multi-worker test: `python -m tests.tf.multi_worker_train OUTPUT.npz` with TF_CONFIG set.

Of four synthetic batches, worker 0 trains on the first and third, worker 1 on the second and
fourth, as every worker feeds its own data; if gradients were not summed over the workers, their
weights would part after the first step. Two models, one after the other in the same strategy:

1. the tiny hourglass with batch norm and dropout, so moving statistics and dropout seeds are covered too;
2. the tiny hourglass without batch norm or dropout, whose two-worker result must equal one
   process training on both workers' batches at once (batch norm would see only its worker's
   half of the batch, so it is left out there). It saves its starting weights for that.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from tests.tiny_models import NORM_OPTIONS, TINY_OPTIONS, build, half_gain_batches, ignore, tiny_settings

WORKERS = 2
NORM_AND_DROPOUT = {**NORM_OPTIONS, "hg_module": {**NORM_OPTIONS["hg_module"], "dropoutfactor": 0.2}}
BATCHES = 4
SEED = 7


def worker_batches(index: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """This worker's share of the four batches: every other one, starting at its index."""
    return list(half_gain_batches(BATCHES, seed=SEED))[index::WORKERS]


def numbered(prefix: str, variables: list) -> dict[str, np.ndarray]:
    """Values keyed by position: Keras numbers its automatic names per process, so names differ between runs."""
    return {f"{prefix}/{position:03d}": np.asarray(variable) for position, variable in enumerate(variables)}


def main(output: str) -> None:
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    results: dict[str, np.ndarray | float | int] = {}
    norm = build(tiny_settings(options=NORM_AND_DROPOUT, distribution="multi_worker", loss_function="L11_loss"))
    metrics = norm.train_epoch(worker_batches(index), BATCHES // WORKERS, ignore)
    results.update(numbered("norm", norm.network.weights))
    results.update(norm_iterations=norm.iterations, norm_loss=metrics["loss"])

    plain = build(tiny_settings(options=TINY_OPTIONS, distribution="multi_worker", loss_function="L11_loss"))
    results.update(numbered("start", plain.network.weights))
    metrics = plain.train_epoch(worker_batches(index), BATCHES // WORKERS, ignore)
    results.update(numbered("plain", plain.network.weights))
    # Adam's updates hide a constant factor in the gradients; its moments show it.
    results.update(numbered("moments", plain.optimizer.variables))
    results.update(plain_iterations=plain.iterations, plain_loss=metrics["loss"])
    np.savez(output, **results)


if __name__ == "__main__":
    main(sys.argv[1])
