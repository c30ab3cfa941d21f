"""`TorchSeparationModel`: a PyTorch network and its optimiser behind core's `SeparationModel` protocol.

Core's driver owns the epoch loop, the progress bar, Ctrl-C and the callbacks, and hands over
numpy batches (batch, bins, frames, channels); this class turns each into one optimiser step.
Things worth knowing:

- Memory format: the weights live in channels-last memory, and an incoming NHWC batch becomes an
  NCHW tensor by a permute that copies nothing (its strides are exactly channels-last), so no
  batch is transposed in memory, in or out. It is PyTorch's recommended layout for convolutions
  on oneDNN (CPU) and on tensor-core GPUs, and on a CPU it measured no slower than NCHW, for the
  quickstart's narrow hourglass and the full-width one (benchmarks/README.md). A waveform
  network takes its (batch, channels, samples) batches as they are, in PyTorch's default layout.
- Threads: `torch.set_num_threads` is left alone; PyTorch's default (one thread per core) or
  OMP_NUM_THREADS decide, as the user set them. `unmix train-ddp` divides the cores between its
  processes unless OMP_NUM_THREADS is set. On a machine shared with other busy processes,
  OpenMP's spinning threads slow PyTorch down steeply, so that two threads can be many times
  slower than one (benchmarks/bench_torch.py, benchmarks/README.md); OMP_NUM_THREADS=1 or
  OMP_WAIT_POLICY=PASSIVE avoids that.
- Device: the GPU when PyTorch sees one (under DDP, the one of LOCAL_RANK), else the CPU.
- `training.model.options.mixed_precision: true` runs forward passes in float16 with a dynamic
  loss scale on a GPU, and in bfloat16 (no loss scale needed) on a CPU that supports it
  (AVX512-BF16 or AMX); on another CPU it trains in float32 and says so.
- Distribution: see `unmix.torch.distributed`; only rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unmix.core.config.schema import Configuration
from unmix.core.errors import ModelError
from unmix.core.interfaces import Batch, Metrics
from unmix.core.models.freezing import is_under, names_under
from unmix.core.models.losses import check_loss_fits_kind, check_output_fits_loss
from unmix.core.models.networks import input_kind
from unmix.core.models.options import check_checkpoint_fits
from unmix.core.training.running_means import RunningMeans
from unmix.torch import checkpoints
from unmix.torch.distributed import (
    CONTINUE,
    EXHAUSTED,
    INTERRUPTED,
    ProcessGroup,
    check_distribution,
    choose_device,
    join,
    process_rank,
    select,
)
from unmix.torch.events import EventLog, open_event_log
from unmix.torch.losses import Loss, Metric, get_loss, get_metric
from unmix.torch.optimizers import make_optimizer
from unmix.torch.summary import summarize

log = logging.getLogger("unmix")

NetworkBuilder = Callable[[Mapping[str, Any], tuple[int, ...]], nn.Module]


def build_model(name: str, settings: Configuration, input_shape: tuple[int, ...],
                network_builder: NetworkBuilder, options: Mapping[str, Any]) -> TorchSeparationModel:
    """Check the configuration's loss, metrics, optimiser and distribution, then build.

    `options` are the network's options, already read and checked by the kit (`unmix.torch.kit`); the backend
    takes `mixed_precision` out of them, and the network gets the rest.
    """
    training = settings.training
    options = dict(options)
    mixed_precision = options.pop("mixed_precision")
    get_loss(training.loss_function)
    for metric in training.metrics:
        get_metric(metric)
    distribution = check_distribution(training.distribution)
    input_shape = tuple(int(size) for size in input_shape)
    network = network_builder(options, input_shape)
    output_shape = summarize(lambda: network_builder(options, input_shape), input_shape).output_shape
    kind = input_kind(input_shape)
    check_loss_fits_kind(training.loss_function, name, kind)
    check_output_fits_loss(training.loss_function, name, input_shape, output_shape)
    if kind == "waveform" and output_shape != input_shape:
        raise ModelError(f"waveform model '{name}' returns {output_shape} for chunks (channels, samples) = "
                         f"{input_shape}; a waveform network must return the target's samples in its input's shape")
    description = {
        "model": name,
        "options": options,
        "loss_function": training.loss_function,
        "metrics": list(training.metrics),
        "input_shape": list(input_shape),
        "weight_shapes": weight_shapes(network),
    }
    return TorchSeparationModel(
        network, description,
        optimizer_name=training.optimizer.name, learning_rate=training.optimizer.lr,
        distribution=distribution, mixed_precision=mixed_precision,
        network_factory=lambda: network_builder(options, input_shape), kind=kind,
    )


def weight_shapes(network: nn.Module) -> dict[str, list[int]]:
    """The architecture's fingerprint as far as loading weights is concerned (parameters and buffers)."""
    return {name: list(tensor.shape) for name, tensor in network.state_dict().items()}


class TorchSeparationModel:
    """A PyTorch network with its optimiser, loss and metrics; see the module docstring for how it trains."""

    backend = "torch"
    checkpoint_suffix = ".pt"
    # Batch norms inside frozen groups (`freeze`): kept in eval mode while training, so their statistics stay.
    _frozen_norms: tuple[nn.Module, ...] = ()

    def __init__(self, network: nn.Module, description: Mapping[str, Any], *, optimizer_name: str,
                 learning_rate: float, distribution: str = "none", mixed_precision: bool = False,
                 network_factory: Callable[[], nn.Module], kind: str = "spectrogram") -> None:
        self.description = dict(description)
        self.device = choose_device(distribution)
        # Batches of spectrogram windows arrive channels-last (module docstring); waveform chunks need no layout.
        self.waveform = kind == "waveform"
        memory_format = torch.preserve_format if self.waveform else torch.channels_last
        self.network = network.to(self.device, memory_format=memory_format)
        self.optimizer = make_optimizer(optimizer_name, learning_rate, list(self.network.parameters()))
        self.distribution = distribution
        # Optimiser steps taken since the model was created, resumes included.
        self.iterations = 0
        self._loss: Loss = get_loss(self.description["loss_function"])
        self._metrics: dict[str, Metric] = {name: get_metric(name) for name in self.description["metrics"]}
        self._network_factory = network_factory
        self._rank = process_rank(distribution)
        self._group: ProcessGroup | None = None
        self._joined = False
        self._trainer: nn.Module = self.network
        self._event_logs: dict[Path, EventLog | None] = {}
        self._autocast_dtype = autocast_dtype(self.device) if mixed_precision else None
        if mixed_precision and self._autocast_dtype is None:
            log.warning("mixed_precision is on but this CPU has no bfloat16 support: the torch backend trains in "
                        "float32")
        # float16 gradients underflow without a loss scale; bfloat16 has float32's range and needs none.
        self._scaler = torch.amp.GradScaler("cuda", enabled=self._autocast_dtype == torch.float16)

    # ---- what the driver asks -------------------------------------------------------------

    def trainable_parameters(self) -> int:
        return int(sum(parameter.numel() for parameter in self.network.parameters() if parameter.requires_grad))

    def summary(self) -> str:
        """Layers, shapes and parameter counts, traced on PyTorch's meta device: nothing is computed."""
        text = summarize(self._network_factory, tuple(self.description["input_shape"])).text(self.description["model"])
        return f"{text}\nComputes in: {self.precision}"

    @property
    def precision(self) -> str:
        """What the forward passes compute in, for the run log (mixed precision depends on the machine)."""
        if self._autocast_dtype is None:
            return f"float32 on {self.device.type}"
        return f"{str(self._autocast_dtype).removeprefix('torch.')} on {self.device.type}, with float32 weights"

    def train_epoch(self, batches: Iterable[Batch], steps: int, on_batch: Callable[[int, Metrics], None]) -> Metrics:
        """`on_batch(step, running means)` after every batch, step counting from 0 as in the Keras backend."""
        group = self._process_group()
        self._trainer.train()
        for module in self._frozen_norms:
            module.eval()
        tally = _Tally(self._loss, self._metrics, group)
        if group is None:
            for step, (inputs, targets) in zip(range(steps), batches, strict=False):
                tally.add(self._train_step(inputs, targets), len(inputs))
                on_batch(step, tally.values())
            return tally.result("training")
        return self._train_epoch_together(group, tally, batches, steps, on_batch)

    def evaluate(self, batches: Iterable[Batch], steps: int) -> Metrics:
        group = self._process_group()
        self.network.eval()
        tally = _Tally(self._loss, self._metrics, group)
        chosen: Iterable[Batch] = (
            (batch for _, batch in zip(range(steps), batches, strict=False)) if group is None
            else select(batches, group.validation_share(steps))
        )
        with torch.inference_mode(), self._precision():
            for inputs, targets in chosen:
                x, y = self._tensor(inputs), self._tensor(targets)
                outputs = self.network(x).float()
                tally.add(self._measure(self._loss.function(y, outputs, x), outputs), len(inputs))
        return tally.result("validation")

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The raw network output (for masks: unclipped) of one network call on `inputs`.

        The caller sizes the batch (`unmix predict --batch-size` reaches the network through the
        separation engine), so `inputs` is not split again here.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        if len(inputs) == 0:
            return np.zeros((0, *self.description["input_shape"]), dtype=np.float32)
        self.network.eval()
        with torch.inference_mode(), self._precision():
            outputs = self.network(self._tensor(inputs)).float()
        if self.waveform:
            return np.ascontiguousarray(outputs.cpu().numpy(), dtype=np.float32)
        return _array(outputs)

    def export_onnx(self, path: Path) -> dict[str, Any]:
        """The network as an ONNX graph (`unmix.torch.export`), from a copy on the CPU in float32."""
        from unmix.torch.export import export_network

        network = self._network_factory()
        network.load_state_dict({name: value.detach().cpu() for name, value in self.network.state_dict().items()})
        return export_network(network, self.description["input_shape"], self.waveform, path)

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = float(value)

    @property
    def is_primary(self) -> bool:
        """Whether this process writes checkpoints: always, except on DDP ranks other than 0."""
        return self._rank == 0

    def write_scalars(self, folder: Path, epoch: int, values: Mapping[str, float]) -> None:
        """TensorBoard event files for the run's epoch metrics (core's tensorboard callback calls this)."""
        if not self.is_primary:
            return
        folder = Path(folder)
        if folder not in self._event_logs:
            self._event_logs[folder] = open_event_log(folder)
        event_log = self._event_logs[folder]
        if event_log is not None:
            event_log.scalars(epoch, values)

    def save_checkpoint(self, path: Path) -> None:
        """Weights, optimiser state and step count in one file; a no-op on DDP ranks other than 0."""
        if not self.is_primary:
            return
        checkpoints.save(Path(path), {
            "unmix": self.description,
            "iterations": self.iterations,
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self._scaler.state_dict(),
        })

    def load_checkpoint(self, path: Path) -> None:
        """Weights and optimiser state (step count, moments, learning rate) from a checkpoint of the same model."""
        path = Path(path)
        contents = checkpoints.load(path, self.device)
        check_checkpoint_fits(path, contents.get("unmix", {}), self.description)
        try:
            self.network.load_state_dict(contents["model"])
            self.optimizer.load_state_dict(contents["optimizer"])
            if contents.get("scaler"):
                self._scaler.load_state_dict(contents["scaler"])
        except (KeyError, ValueError, RuntimeError) as error:
            raise ModelError(f"checkpoint '{path}' cannot be loaded ({error!s:.200}); use another checkpoint") from None
        self.iterations = int(contents.get("iterations", 0))

    def load_weights(self, path: Path) -> None:
        """The network's weights alone from a checkpoint of the same model, for fine-tuning: the optimiser,
        its step count and the learning rate stay as built, so a new run starts afresh from these weights."""
        path = Path(path)
        contents = checkpoints.load(path, self.device)
        check_checkpoint_fits(path, contents.get("unmix", {}), self.description)
        try:
            self.network.load_state_dict(contents["model"])
        except (KeyError, RuntimeError) as error:
            raise ModelError(f"checkpoint '{path}' cannot be loaded ({error!s:.200}); use another checkpoint") from None

    def freeze(self, prefixes: Sequence[str]) -> None:
        """Stop training the parameters under `prefixes` ("layers.0" is "layers.0" and "layers.0.*").

        Their gradients are no longer computed, so the optimiser leaves them as they are; a batch norm
        inside a frozen group also keeps its running statistics (as Keras' frozen layers do), since
        they are as much a part of what was learnt as its weights.
        """
        frozen = set(names_under(prefixes, [name for name, _ in self.network.named_parameters()]))
        for name, parameter in self.network.named_parameters():
            if name in frozen:
                parameter.requires_grad_(False)
        self._frozen_norms = tuple(module for name, module in self.network.named_modules()
                                   if getattr(module, "track_running_stats", False) and is_under(name, prefixes))

    # ---- training steps -------------------------------------------------------------------

    def _train_epoch_together(self, group: ProcessGroup, tally: _Tally, batches: Iterable[Batch], steps: int,
                              on_batch: Callable[[int, Metrics], None]) -> Metrics:
        """One epoch in step with the other processes: see `unmix.torch.distributed`."""
        mine = iter(select(batches, group.training_share(steps)))
        pending: Exception | None = None
        step = 0
        while True:
            batch = next(mine, None)
            state = INTERRUPTED if pending is not None else EXHAUSTED if batch is None else CONTINUE
            agreed = group.agree(state)
            if agreed != CONTINUE:
                break
            inputs, targets = batch
            tally.add(self._train_step(inputs, targets), len(inputs))
            try:
                on_batch(step, tally.values())
            except Exception as error:  # the driver leaves an epoch this way; the others must stop too
                pending = error
            step += 1
        group.share_buffers(self.network)
        if pending is not None:
            raise pending
        if agreed == INTERRUPTED:
            raise ModelError("training stopped because another DDP process was interrupted")
        return tally.result("training")

    def _train_step(self, inputs: np.ndarray, targets: np.ndarray) -> dict[str, torch.Tensor]:
        x, y = self._tensor(inputs), self._tensor(targets)
        self.optimizer.zero_grad(set_to_none=True)
        with self._precision():
            outputs = self._trainer(x).float()
        loss = self._loss.function(y, outputs, x)
        # DDP averages gradients; a loss that sums over the batch must be summed over the processes too.
        scale = self._group.world_size if self._group is not None and self._loss.summed else 1
        self._scaler.scale(loss * scale if scale != 1 else loss).backward()
        self._scaler.step(self.optimizer)
        self._scaler.update()
        self.iterations += 1
        return self._measure(loss.detach(), outputs.detach())

    def _measure(self, loss: torch.Tensor, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        measured = {"loss": loss}
        for name, metric in self._metrics.items():
            measured[name] = metric.function(outputs)
        return measured

    def _process_group(self) -> ProcessGroup | None:
        """Join the DDP group on first use, wrapping the network so its gradients are averaged."""
        if not self._joined:
            self._joined = True
            self._group = join(self.distribution, self.device)
            if self._group is not None:
                device_ids = [self.device.index] if self.device.type == "cuda" else None
                self._trainer = nn.parallel.DistributedDataParallel(self.network, device_ids=device_ids)
        return self._group

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """NHWC numpy in, NCHW channels-last tensor out, without copying on the CPU; waveform
        chunks (batch, channels, samples) as they are."""
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if not self.waveform:
            tensor = tensor.permute(0, 3, 1, 2)
        return tensor.to(self.device, non_blocking=True)

    def _precision(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is not None:
            return torch.autocast(self.device.type, dtype=self._autocast_dtype)
        return contextlib.nullcontext()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """float16 on a GPU; bfloat16 on a CPU whose instructions (AVX512-BF16, AMX) make it fast; else None."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def _array(tensor: torch.Tensor) -> np.ndarray:
    """NCHW tensor back to an NHWC float32 array (a view when the tensor is channels-last on the CPU)."""
    return np.ascontiguousarray(tensor.permute(0, 2, 3, 1).cpu().numpy(), dtype=np.float32)


class _Tally:
    """Core's running means of the step results, plus the maxima, summed over DDP processes at the end.

    A summed loss (L11_loss) of one optimiser step under DDP is the sum of the processes' losses,
    so its epoch value is the mean per process batch times the number of processes: the same
    number one process would report for the same effective batch.
    """

    def __init__(self, loss: Loss, metrics: Mapping[str, Metric], group: ProcessGroup | None) -> None:
        # Fixed name lists, so every process's all-reduce has the same length even without batches.
        self._means = ["loss", *sorted(name for name, metric in metrics.items() if metric.reduction == "mean")]
        self._maxima = sorted(name for name, metric in metrics.items() if metric.reduction == "max")
        self._loss_scale = group.world_size if group is not None and loss.summed else 1
        self._group = group
        self._running = RunningMeans()
        self._largest: dict[str, float] = {}

    def add(self, measured: Mapping[str, torch.Tensor], count: int) -> None:
        self._running.add({name: value for name, value in measured.items() if name not in self._maxima}, count)
        for name in self._maxima:
            if name in measured:
                self._largest[name] = max(self._largest.get(name, -np.inf), float(measured[name]))

    def values(self) -> Metrics:
        return self._with_maxima(self._running.values()) if self._running.count else {}

    def result(self, split: str) -> Metrics:
        if self._group is not None:
            self._combine(self._group)
        return self._with_maxima(self._running.result(split))

    def _with_maxima(self, means: dict[str, float]) -> Metrics:
        """The processes' summed loss (see the class docstring), then the maxima after the means."""
        if "loss" in means:
            means["loss"] *= self._loss_scale
        return {**means, **self._largest}

    def _combine(self, group: ProcessGroup) -> None:
        totals = group.total([self._running.count, *(self._running.total(name) for name in self._means)])
        self._running = RunningMeans(int(round(totals[0])), dict(zip(self._means, totals[1:], strict=True)))
        if self._maxima:
            largest = group.total([self._largest.get(name, -np.inf) for name in self._maxima], op="max")
            self._largest = dict(zip(self._maxima, largest, strict=True))

