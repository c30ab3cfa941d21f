"""One rank of the DDP test: `python -m tests.torch.ddp_worker OUTPUT_FOLDER` with RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT set, as torchrun or `unmix train-ddp` would.

Every rank gets the same four synthetic batches and trains on its half (two steps), in three
phases that share one process group:

1. the tiny hourglass with batch norm: weights, statistics and metrics, and a checkpoint that
   only rank 0 may write;
2. the tiny hourglass without batch norm or dropout, whose two-rank result (weights, last
   gradients, loss) must equal one process training on both ranks' batches at once;
3. rank 1's progress callback raises at the first step: both ranks must stop, neither may hang.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from tests.torch.tiny import NORM_OPTIONS, TINY_OPTIONS, build, half_gain_batches, ignore, tiny_settings

torch.set_num_threads(1)


def state(model) -> dict[str, np.ndarray]:
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.network.state_dict().items()}


class Stop(Exception):
    pass


def main(output: Path) -> None:
    rank = int(os.environ["RANK"])
    settings = tiny_settings(options=NORM_OPTIONS, distribution="ddp", loss_function="L11_loss",
                             metrics=["mean_pred", "max_pred"])
    torch.manual_seed(100 + rank)  # different starting weights: DDP must make rank 0's everyone's
    model = build(settings)
    training = model.train_epoch(half_gain_batches(4, seed=7), 4, ignore)
    validation = model.evaluate(half_gain_batches(3, seed=8), 3)
    model.save_checkpoint(output / f"rank{rank}.pt")
    results = {f"norm/{name}": value for name, value in state(model).items()}
    results.update({"iterations": model.iterations, "train_loss": training["loss"],
                    "train_max_pred": training["max_pred"], "val_loss": validation["loss"],
                    "val_mean_pred": validation["mean_pred"]})

    torch.manual_seed(0)
    plain = build(tiny_settings(options=TINY_OPTIONS, distribution="ddp", loss_function="L11_loss"))
    results.update({f"start/{name}": value for name, value in state(plain).items()})
    results["plain_loss"] = plain.train_epoch(half_gain_batches(4, seed=7), 4, ignore)["loss"]
    results.update({f"plain/{name}": value for name, value in state(plain).items()})
    # The last step's gradients (all-reduced), to check their scale against one process's.
    gradients = {f"grad/{name}": parameter.grad.numpy().copy() for name, parameter in plain.network.named_parameters()}
    results.update(gradients)

    def stop_on_rank_one(step: int, running: dict[str, float]) -> None:
        if rank == 1:
            raise Stop

    stopping = build(tiny_settings(options=TINY_OPTIONS, distribution="ddp"))
    try:
        stopping.train_epoch(half_gain_batches(4, seed=9), 4, stop_on_rank_one)
        results["stopped_by"] = "nothing"
    except Stop:
        results["stopped_by"] = "own callback"
    except Exception as error:  # noqa: BLE001 - the message is what the test checks
        results["stopped_by"] = str(error)
    results["stopping_iterations"] = stopping.iterations
    np.savez(output / f"rank{rank}.npz", **results)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
