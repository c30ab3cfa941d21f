"""`training.distribution` as a tf.distribute strategy.

- "none": TensorFlow's default strategy (one device, no extra machinery).
- "mirrored": `MirroredStrategy` over the local GPUs (the CPU when there is none); each batch is
  split across the devices, so training.batch_size is the batch of the whole machine.
- "multi_worker": `MultiWorkerMirroredStrategy`, one process per machine, the cluster described
  by the TF_CONFIG environment variable. Every worker runs the same `unmix train` on its own
  copy of the data and feeds its own batches, so the effective batch is training.batch_size
  times the number of workers; gradients are summed over all workers each step, so the workers
  must run the same number of steps per epoch.

A process can hold only one multi-worker strategy, so each kind is created once per process and
shared by every model built in it (`unmix train A.jsonc B.jsonc` builds several).
"""

from __future__ import annotations

import functools
import json
import os

import tensorflow as tf

from unmix.core.errors import ModelError


@functools.cache
def strategy_for(distribution: str) -> tf.distribute.Strategy:
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "multi_worker":
        _check_cluster()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:
            raise ModelError(
                f"training.distribution 'multi_worker' could not start ({error}); it must be set up before "
                "TensorFlow runs anything else in the process"
            ) from None
    if distribution == "ddp":
        raise ModelError(
            "training.distribution 'ddp' is PyTorch's; the TensorFlow models use 'mirrored' or 'multi_worker'"
        )
    raise ModelError(
        f"training.distribution: unknown value '{distribution}'; use none, mirrored or multi_worker"
    )


def _check_cluster() -> None:
    """Without a cluster, MultiWorkerMirroredStrategy silently trains alone; a missing TF_CONFIG is a mistake."""
    text = os.environ.get("TF_CONFIG", "")
    try:
        config = json.loads(text) if text else None
    except ValueError as error:
        raise ModelError(f"training.distribution 'multi_worker': TF_CONFIG is not valid JSON ({error})") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ModelError(
            "training.distribution 'multi_worker' needs the TF_CONFIG environment variable on every worker, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
