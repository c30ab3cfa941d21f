"""`training.distribution: "ddp"`: one process per device, gradients averaged by torch.distributed.

How the processes start: torchrun (`torchrun --nproc-per-node 2 -m unmix.cli train C.jsonc`, any
number of machines) or `unmix train-ddp --processes 2 C.jsonc` (one machine, `unmix.torch.launch`).
Either way each process runs the ordinary `unmix train` with RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT in its environment; the process group (gloo on CPUs, nccl on GPUs) is joined on the
first training or validation pass, not when the model is built, so `unmix predict` and
`unmix evaluate` on a run trained with "ddp" simply run in one process. Without those variables
a "ddp" configuration trains in its one process, with a warning.

What each process does, and why:

- Every process runs core's driver on the same data. Batch `i` of an epoch goes to process
  `i % world_size` (the batch order is deterministic per epoch, so the processes agree on it
  without talking), every process takes the same number of steps (`steps // world_size`, the
  remainder is dropped, as DistributedSampler does), and one optimiser step consumes
  world_size batches: the effective batch is training.batch_size times the processes.
- Before each step the processes agree, with one tiny all-reduce, whether to go on: when one
  of them is interrupted (Ctrl-C) or runs out of batches, all stop after the same step instead
  of leaving the others waiting in a gradient all-reduce forever.
- Epoch losses and metrics, training and validation, are summed over all processes, so every
  process sees the same numbers and core's callbacks (best checkpoint, early stopping, reduce-lr)
  take the same decisions everywhere. Validation batches are split too, without dropping any.
- Batch-norm statistics are computed per process (as PyTorch's DDP and tf.distribute do) and
  rank 0's are broadcast after each epoch, so all processes end an epoch with identical state.
- Only rank 0 writes checkpoints (and TensorBoard logs): `save_checkpoint` is a no-op elsewhere.
  Every process still runs the whole driver, which creates a run folder per process; `unmix
  train-ddp` points the other ranks at a scratch folder that it deletes at the end, so the one
  run folder left has the checkpoints. Under torchrun every rank's run folder lands in the same
  runs/ folder (`<stamp>-<name>`, `<stamp>-<name>-2`, ... in whatever order the ranks got there);
  all have logs and results, only rank 0's has weights/: use that one.
- Under torchrun every rank prepares the data at the same moment. A raw collection folder is
  checked against its cache under a lock that core does not wait for, even when the cache is
  complete, so all but one rank may fail ("another `unmix generate` is writing ..."). With
  torchrun, point collection.folder at a cache made by `unmix generate` (opened without that
  lock). `unmix train-ddp` builds the cache itself and starts the ranks one after another
  (`unmix.torch.launch`).
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import attrs
import torch
import torch.distributed as dist

from unmix.core.errors import ModelError

log = logging.getLogger("unmix")

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
READY_VARIABLE = "UNMIX_DDP_READY_FILE"  # set by `unmix train-ddp` (unmix.torch.launch)
DISTRIBUTIONS = ("none", "ddp")

# What a process tells the others before each step; the largest value wins.
CONTINUE, EXHAUSTED, INTERRUPTED = 0, 1, 2

Item = TypeVar("Item")


def check_distribution(distribution: str) -> str:
    if distribution in DISTRIBUTIONS:
        return distribution
    if distribution in ("mirrored", "multi_worker"):
        raise ModelError(
            f"training.distribution '{distribution}' is TensorFlow's; the torch models use 'ddp' "
            "(torch.distributed) or 'none'"
        )
    raise ModelError(f"training.distribution: unknown value '{distribution}'; the torch models use none or ddp")


def launched() -> bool:
    """Whether torchrun (or `unmix train-ddp`) started this process as one of a group."""
    return all(name in os.environ for name in LAUNCH_VARIABLES)


def process_rank(distribution: str) -> int:
    """This process's rank, known before the group is joined (it decides who writes checkpoints)."""
    if distribution == "ddp" and launched():
        return int(os.environ["RANK"])
    return 0


def choose_device(distribution: str) -> torch.device:
    """The GPU of this process (LOCAL_RANK under a launcher) when there is one, else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if distribution == "ddp" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cuda", torch.cuda.current_device())


@attrs.frozen
class ProcessGroup:
    """This process's place in the group, and the few collectives the model needs."""

    rank: int
    world_size: int
    device: torch.device

    def training_share(self, steps: int) -> list[int]:
        """Indices of this process's batches: the same count on every process, or the gradient all-reduce hangs."""
        if steps >= self.world_size:
            return [self.rank + k * self.world_size for k in range(steps // self.world_size)]
        # Fewer batches than processes: the ones without a batch of their own repeat one.
        return [self.rank % steps] if steps else []

    def validation_share(self, steps: int) -> list[int]:
        """Every validation batch exactly once over all processes; the sums are exact, so counts may differ."""
        return list(range(self.rank, steps, self.world_size))

    def agree(self, state: int) -> int:
        """The largest of every process's state (CONTINUE, EXHAUSTED, INTERRUPTED)."""
        value = torch.tensor([state], dtype=torch.int64, device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return int(value.item())

    def total(self, values: Sequence[float], op: str = "sum") -> list[float]:
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return [float(value) for value in tensor.cpu()]

    def share_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's batch-norm statistics everywhere, so all processes hold the same model."""
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


_warned_single = False


def join(distribution: str, device: torch.device) -> ProcessGroup | None:
    """The process group for "ddp" (joined once per process), or None when training alone."""
    global _warned_single
    if distribution != "ddp":
        return None
    if not launched():
        if not _warned_single:
            _warned_single = True
            log.warning(
                "training.distribution is 'ddp' but this process was not started by torchrun or `unmix train-ddp` "
                "(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are not set): training in this one process"
            )
        return None
    if not dist.is_initialized():
        _announce_ready()
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(backend=backend, init_method="env://")
        except (RuntimeError, ValueError) as error:
            address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
            raise ModelError(
                f"training.distribution 'ddp' could not join the process group at {address} as rank "
                f"{os.environ['RANK']} of {os.environ['WORLD_SIZE']} ({str(error).splitlines()[0]}); check that "
                "every process was started with the same MASTER_ADDR and MASTER_PORT"
            ) from None
        atexit.register(_leave)
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), device)


def _announce_ready() -> None:
    """Tell `unmix train-ddp` that this rank's data is ready, so it can start the next rank."""
    ready = os.environ.get(READY_VARIABLE)
    if ready:
        Path(ready).touch()


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def select(batches: Iterable[Item], indices: Sequence[int]) -> Iterator[Item]:
    """The items at `indices` (ascending) of `batches`, reading no further than the last one needed."""
    if not indices:
        return
    wanted = set(indices)
    last = max(indices)
    for index, item in enumerate(batches):
        if index in wanted:
            yield item
        if index >= last:
            return
