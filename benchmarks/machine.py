"""The CPU a benchmark ran on and one thread count for every framework it times.

A speed ratio between two systems means something only when both had the same cores: PyTorch
defaults to one thread per core, TensorFlow sizes its own pools, and a subprocess inherits
neither setting, only the environment. `use_threads` therefore sets one count everywhere: the
environment (read by `unmix` subprocesses and by frameworks not imported yet), PyTorch in this
process and TensorFlow in this process. It must run before either framework has done any work,
which is why benchmarks call it first. `describe_threads` reads back what each framework reports,
so the printed numbers say what the run really used, not what was asked for.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def cpu_model() -> str:
    """The processor's marketing name, which `os.cpu_count()` alone does not tell a reader."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_cpu() -> str:
    """CPU, cores and the load average: a busy neighbour explains a slow number."""
    return f"{cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"


def use_threads(count: int) -> None:
    """Give PyTorch, TensorFlow and every subprocess `count` intra-op and `count` inter-op threads."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(count)
    import tensorflow as tf
    import torch

    torch.set_num_threads(count)
    torch.set_num_interop_threads(count)
    tf.config.threading.set_intra_op_parallelism_threads(count)
    tf.config.threading.set_inter_op_parallelism_threads(count)


def describe_threads() -> str:
    """The thread counts each framework reports now, and what subprocesses inherit."""
    import tensorflow as tf
    import torch

    # OMP_WAIT_POLICY is shown, not set: on a busy machine it decides how much PyTorch's spinning threads lose.
    shown = (*THREAD_VARIABLES, "OMP_WAIT_POLICY")
    inherited = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in shown)
    return (f"torch {torch.get_num_threads()} intra-op / {torch.get_num_interop_threads()} inter-op threads; "
            f"tensorflow {tf.config.threading.get_intra_op_parallelism_threads()} intra-op / "
            f"{tf.config.threading.get_inter_op_parallelism_threads()} inter-op; subprocesses: {inherited}")


def default_threads() -> int:
    """Every core, for both sides alike: the default a user of either system gets on this machine."""
    return os.cpu_count() or 1
