"""`unmix train-ddp`: start the DDP processes of one machine and leave one run folder behind.

torchrun would start the processes too (`torchrun --nproc-per-node N -m unmix.cli train C.jsonc`),
but every process then runs the whole of `unmix train` in the same working directory and makes
a run folder of its own. This command runs `python -m unmix.cli train` once per rank with the
environment torchrun would set (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, a free
MASTER_PORT), gives the ranks other than 0 a scratch working directory (and, when resuming, a
scratch copy of the run folder) that it deletes afterwards, and watches them: when one fails,
the others are stopped rather than left waiting for it. Rank 0 prints as `unmix train` does; the
other ranks' output goes to their scratch logs and is shown only when they fail.

Preparing the data must not happen in two ranks at once: core opens a collection's cache under
a lock that it does not wait for, so the second rank to check the cache fails ("another `unmix
generate` is writing ..."). So the caches are built here first, the configurations are trained
one at a time, and rank k+1 starts only when rank k has prepared its data and is about to join
the process group (it touches the file named by UNMIX_DDP_READY_FILE, see
`unmix.torch.distributed.join`) or has ended.

It imports no torch: the plugin module registers this command on every `unmix` start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from unmix.core.config.loader import LoadedConfiguration

READY_VARIABLE = "UNMIX_DDP_READY_FILE"
"""Names the file a rank touches when its data is ready and it joins the process group."""

GRACE_SECONDS = 10.0
"""How long the other ranks get to notice that one failed before they are stopped."""

INTERRUPT_SECONDS = 120.0
"""How long rank 0 gets after Ctrl-C to write its checkpoint."""


@click.command("train-ddp")
@click.argument("configurations", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Processes to start [default: one per GPU; required without GPUs].")
@click.option("--workingdir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder under which runs/ (environment.output_path) is created.")
@click.option("--resume", "resume", type=click.Path(), default=None,
              help="Continue this run folder at its next epoch, with its optimiser state.")
def train_ddp(configurations: tuple[str, ...], processes: int | None, workingdir: str, resume: str | None) -> None:
    """Train torch CONFIGURATIONS with training.distribution "ddp" on this machine (unmix-torch).

    Starts one `unmix train` process per rank (gloo on CPUs, nccl on GPUs) and trains the
    configurations one after another. For several machines use torchrun:
    torchrun --nnodes M --nproc-per-node N ... -m unmix.cli train C.jsonc
    """
    if resume is None and not configurations:
        raise click.UsageError("give at least one CONFIGURATION, or --resume RUN")
    if resume is not None and configurations:
        raise click.UsageError("--resume continues an existing run; give no CONFIGURATION with it")
    count = processes or _gpu_count()
    if not count:
        raise click.UsageError("no GPU found: give --processes N")
    jobs = [(None, resume)] if resume is not None else [(configuration, None) for configuration in configurations]
    loaded = check_configurations(configurations, resume)
    failures = 0
    for (configuration, resumed), settings in zip(jobs, loaded, strict=True):
        prepare_data(settings)
        code = launch(configuration, count, workingdir, resumed)
        if code == 130:
            raise SystemExit(code)
        failures += bool(code)
        if code and len(jobs) == 1:
            raise SystemExit(code)
    if failures:
        click.echo(f"unmix: {failures} of {len(jobs)} configurations failed", err=True)
        raise SystemExit(2)


def check_configurations(configurations: tuple[str, ...], resume: str | None) -> list[LoadedConfiguration]:
    """Refuse, before starting anything, a configuration that would train N separate copies."""
    from unmix.core.config.loader import load_configuration
    from unmix.core.errors import UnmixError
    from unmix.core.runs import open_run_folder

    loaded = [open_run_folder(resume).load_configuration()] if resume else [
        load_configuration(path) for path in configurations]
    for configuration in loaded:
        training = configuration.settings.training
        if training.backend != "torch" or training.distribution != "ddp":
            raise UnmixError(
                f"{configuration.path}: train-ddp needs training.backend \"torch\" and training.distribution "
                f"\"ddp\" (it has {training.backend!r} and {training.distribution!r})"
            )
    return loaded


def prepare_data(loaded: LoadedConfiguration) -> None:
    """Build the collection's caches here, once, before any rank looks for them."""
    from unmix.core.data.training_data import prepare_training_data

    data = prepare_training_data(loaded)
    for source in (data.training, data.validation):
        if source is not None:
            source.close()


def launch(configuration: str | None, processes: int, workingdir: str, resume: str | None) -> int:
    """Run the ranks of one configuration (or resumed run) to the end; the exit code is rank 0's,
    or the first failing rank's."""
    scratch = Path(tempfile.mkdtemp(prefix="unmix-ddp-"))
    ranks: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        environment = _environment(processes)
        for rank in range(processes):
            arguments = _train_arguments(configuration, workingdir, resume, rank, scratch)
            logs.append(scratch / f"rank{rank}.log")
            ready = scratch / f"rank{rank}.ready"
            with logs[-1].open("w") as output:
                ranks.append(subprocess.Popen(
                    [sys.executable, "-m", "unmix.cli", "train", *arguments],
                    env={**environment, "RANK": str(rank), "LOCAL_RANK": str(rank), READY_VARIABLE: str(ready)},
                    stdout=None if rank == 0 else output, stderr=None if rank == 0 else subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                ))
            if rank < processes - 1 and not _wait_until_ready(ranks[-1], ready):
                break
        code = _supervise(ranks)
    except KeyboardInterrupt:
        code = _interrupted(ranks)
    finally:
        for rank, (process, log) in enumerate(zip(ranks, logs, strict=False)):
            if rank and process.returncode:
                tail = log.read_text(errors="replace")[-2000:]
                click.echo(f"unmix: rank {rank} ended with exit code {process.returncode}:\n{tail}", err=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return code


def _wait_until_ready(process: subprocess.Popen, ready: Path) -> bool:
    """Whether the rank got as far as joining the group; False when it ended first."""
    while not ready.exists():
        if process.poll() is not None:
            return False
        time.sleep(0.1)
    return True


def _environment(processes: int) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(processes),
                       LOCAL_WORLD_SIZE=str(processes))
    # Each process would otherwise start one thread per core, and the processes would fight over them.
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return environment


def _train_arguments(configuration: str | None, workingdir: str, resume: str | None, rank: int,
                     scratch: Path) -> list[str]:
    folder = workingdir if rank == 0 else str(scratch / f"rank{rank}")
    if resume is None:
        return ["--workingdir", folder, str(configuration)]
    resumed = resume if rank == 0 else str(_copy_run(Path(resume), scratch / f"rank{rank}"))
    return ["--workingdir", folder, "--resume", resumed]


def _copy_run(run: Path, destination: Path) -> Path:
    """What resuming reads (configuration, state, last checkpoint, results), not the predictions or plots."""
    copy = destination / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("predictions", "plots", ".*"))
    return copy


def _supervise(ranks: list[subprocess.Popen]) -> int:
    failed_at = None
    while any(process.poll() is None for process in ranks):
        if failed_at is None and any(process.returncode for process in ranks):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
            _stop(ranks)
        time.sleep(0.2)
    codes = [process.returncode if process.returncode >= 0 else 128 - process.returncode for process in ranks]
    return codes[0] or next((code for code in codes if code), 0)


def _interrupted(ranks: list[subprocess.Popen]) -> int:
    """The ranks got the Ctrl-C too (same process group): rank 0 writes its checkpoint and stops."""
    deadline = time.monotonic() + INTERRUPT_SECONDS
    while any(process.poll() is None for process in ranks) and time.monotonic() < deadline:
        time.sleep(0.2)
    _stop(ranks)
    return 130


def _stop(ranks: list[subprocess.Popen]) -> None:
    for process in ranks:
        if process.poll() is None:
            process.terminate()
    for process in ranks:
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _die_with_parent() -> None:
    """Linux: a rank gets SIGTERM when this launcher dies (even by SIGKILL), rather than waiting for
    its peers in the process group for half an hour."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()
