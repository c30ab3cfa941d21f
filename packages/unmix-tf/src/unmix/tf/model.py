"""`KerasSeparationModel`: a Keras network and its optimiser behind core's `SeparationModel` protocol.

Training runs a compiled `tf.function` step of our own (GradientTape, then
`optimizer.apply_gradients`) rather than `keras.Model.fit`, because:

- the seed's mask loss needs the network input next to target and output (see
  `unmix.tf.losses`), while `predict()` must keep returning the raw mask;
- core's driver owns the epoch loop, the progress bar and Ctrl-C, and hands over an iterable of
  numpy batches per epoch; one step per batch fits that exactly;
- the same step runs under any tf.distribute strategy through `strategy.run`.

Batches are fed to the step straight from the iterable. A `tf.data.Dataset.from_generator`
pipeline with prefetch was measured against it (benchmarks/bench_tf_training.py, numbers in
benchmarks/README.md): no consistent gain, with or without pipeline work per batch to overlap
(core's loader already works in parallel workers). It would also turn core's one-line data
errors (an unreadable song) into TensorFlow errors raised from another thread, and keep pulling
batches after the driver stops an epoch.

Checkpoints are single `.keras` files (architecture, weights and optimiser state, plus an
`unmix.json` entry with the loss and metric names), written under a temporary name and renamed
into place, so a crash never leaves half a checkpoint; `load_checkpoint_model` rebuilds a model
from one file alone.

`training.model.options.mixed_precision: true` computes in a 16-bit float type with float32 weights:
float16 with a dynamic loss scale on a GPU, bfloat16 (float32's range, so no loss scale) on a CPU
whose instructions have it (AVX512-BF16, AMX), where a band-hourglass training step takes about
three quarters of its float32 time. Any other CPU would compute either type slower than float32,
so there it trains in float32 and a warning says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from unmix.core.config.schema import Configuration
from unmix.core.errors import ModelError, first_line
from unmix.core.files import atomic_path
from unmix.core.interfaces import Batch, Metrics
from unmix.core.models.freezing import names_under
from unmix.core.models.losses import check_output_fits_loss
from unmix.core.models.options import check_checkpoint_fits
from unmix.core.training.running_means import RunningMeans
from unmix.tf.distribution import strategy_for
from unmix.tf.losses import get_loss, get_metric
from unmix.tf.optimizers import make_optimizer

log = logging.getLogger("unmix")

NetworkBuilder = Callable[[Mapping[str, Any], tuple[int, int, int]], keras.Model]

DESCRIPTION_ENTRY = "unmix.json"
"""The entry added to the .keras archive for what Keras does not keep: loss and metric names, and
the model name, window shape and weight shapes that `load_checkpoint` compares to name a mismatch."""


def build_model(
    name: str, settings: Configuration, input_shape: tuple[int, int, int], network_builder: NetworkBuilder,
    options: Mapping[str, Any],
) -> KerasSeparationModel:
    """Check the configuration's loss and optimiser, then build network and optimiser under the strategy.

    `options` are the network's options, already read and checked by the kit (`unmix.tf.kit`); the backend
    takes `mixed_precision` out of them, and the network gets the rest.
    """
    training = settings.training
    options = dict(options)
    mixed_precision = options.pop("mixed_precision")
    get_loss(training.loss_function)
    for metric in training.metrics:
        get_metric(metric)
    input_shape = tuple(int(size) for size in input_shape)
    strategy = strategy_for(training.distribution)
    policy = dtype_policy(mixed_precision)
    with strategy.scope(), _dtype_policy(policy):
        optimizer = make_optimizer(training.optimizer.name, training.optimizer.lr,
                                   loss_scale=policy == "mixed_float16")
        network = network_builder(options, input_shape)
    check_output_fits_loss(training.loss_function, name, input_shape, tuple(network.output_shape[1:]))
    if mixed_precision and policy == "float32":
        log.warning("mixed_precision is on but there is no GPU and this CPU has no bfloat16 instructions: "
                    "the tensorflow backend trains in float32")
    description = {
        "model": name,
        "loss_function": training.loss_function,
        "metrics": list(training.metrics),
        "mixed_precision": mixed_precision,
        "input_shape": list(input_shape),
        "weight_shapes": weight_shapes(network),
    }
    return KerasSeparationModel(network, optimizer, description, strategy)


def weight_shapes(network: keras.Model) -> list[list[int]]:
    """The architecture's fingerprint as far as loading weights is concerned."""
    return [[int(size) for size in variable.shape] for variable in network.weights]


def load_checkpoint_model(path: str | os.PathLike[str], distribution: str = "none") -> KerasSeparationModel:
    """A model rebuilt from one checkpoint file: architecture, weights, optimiser state, loss and metrics."""
    path = Path(path)
    description = _read_description(path)
    strategy = strategy_for(distribution)
    with strategy.scope():
        try:
            network = keras.saving.load_model(path, compile=True)
        except (ValueError, OSError, KeyError, TypeError) as error:
            reason = first_line(error)
            raise ModelError(f"checkpoint '{path}' cannot be read ({reason}); use another checkpoint") from None
    return KerasSeparationModel(network, network.optimizer, description, strategy)


class KerasSeparationModel:
    """A Keras network with its optimiser, loss and metrics; see the module docstring for how it trains."""

    backend = "tensorflow"
    checkpoint_suffix = ".keras"

    def __init__(
        self,
        network: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        description: Mapping[str, Any],
        strategy: tf.distribute.Strategy,
    ) -> None:
        self.network = network
        self.optimizer = optimizer
        self.description = dict(description)
        self.strategy = strategy
        self._loss = get_loss(self.description["loss_function"])
        self._metrics = {name: get_metric(name) for name in self.description["metrics"]}
        # The default strategy cannot list its devices; it has exactly one.
        self._local_devices = len(strategy.extended.worker_devices) if strategy.num_replicas_in_sync > 1 else 1
        with strategy.scope():
            if getattr(network, "optimizer", None) is not optimizer:
                # Attaching the optimiser is what makes `network.save` store its state.
                network.compile(optimizer=optimizer)
            optimizer.build(network.trainable_variables)
        self._train_step = tf.function(self._distributed_train_step, reduce_retracing=True)
        self._evaluate_step = tf.function(self._distributed_evaluate_step, reduce_retracing=True)
        self._predict_step = tf.function(lambda inputs: network(inputs, training=False), reduce_retracing=True)

    def trainable_parameters(self) -> int:
        return int(sum(np.prod(variable.shape) for variable in self.network.trainable_weights))

    def summary(self) -> str:
        lines: list[str] = []
        self.network.summary(line_length=110, print_fn=lambda line, line_break=True: lines.append(line))
        return "\n".join(lines) + f"\nComputes in: {self.precision}"

    @property
    def precision(self) -> str:
        """What the layers compute in, for the run log (mixed precision depends on the machine)."""
        policy = self.network.dtype_policy
        device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
        if policy.compute_dtype == policy.variable_dtype:
            return f"{policy.compute_dtype} on {device}"
        return f"{policy.compute_dtype} on {device}, with {policy.variable_dtype} weights"

    def train_epoch(self, batches: Iterable[Batch], steps: int, on_batch: Callable[[int, Metrics], None]) -> Metrics:
        """`on_batch(step, running means)` after every batch, step counting from 0 as Keras' callbacks do."""
        running = RunningMeans()
        for step, (inputs, targets) in zip(range(steps), batches, strict=False):
            running.add(self._train_step(*self._distribute(inputs, targets)), len(inputs))
            on_batch(step, running.values())
        return running.result("training")

    def evaluate(self, batches: Iterable[Batch], steps: int) -> Metrics:
        running = RunningMeans()
        for _, (inputs, targets) in zip(range(steps), batches, strict=False):
            running.add(self._evaluate_step(*self._distribute(inputs, targets)), len(inputs))
        return running.result("validation")

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The raw network output (for mask models: the unclipped mask) of one network call on `inputs`.

        The caller sizes the batch (`unmix predict --batch-size` reaches the network through the
        separation engine), so `inputs` is not split again here.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        if len(inputs) == 0:
            return np.zeros((0, *self.network.output_shape[1:]), dtype=np.float32)
        return np.asarray(self._predict_step(tf.constant(inputs)), dtype=np.float32)

    def export_onnx(self, path: Path) -> dict[str, str]:
        """The network as an ONNX graph through Keras's own exporter, which uses tf2onnx
        (`pip install 'unmix-tf[onnx]'`); the graph takes and returns what `predict` does."""
        try:
            import tf2onnx  # noqa: F401  (Keras's exporter needs it and says so less clearly)
        except ImportError:
            raise ModelError("exporting a Keras model to ONNX needs tf2onnx: pip install 'unmix-tf[onnx]'") from None
        network = self.network if self.network.dtype_policy.compute_dtype == "float32" else float32_copy(self.network)
        # Keras's exporter refuses a model that was never called, as a freshly loaded one is.
        network(np.zeros((1, *network.input_shape[1:]), dtype=np.float32))
        network.export(str(path), format="onnx", verbose=False)
        return {"graph": "predict"}

    @property
    def learning_rate(self) -> float:
        return float(np.asarray(self.optimizer.learning_rate))

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate = float(value)

    @property
    def iterations(self) -> int:
        """Optimiser steps taken since the model was created, resumes included."""
        return int(np.asarray(self.optimizer.iterations))

    def write_scalars(self, folder: Path, epoch: int, values: Mapping[str, float]) -> None:
        """TensorBoard event files for the run's epoch metrics (core's tensorboard callback calls this)."""
        writers = self.__dict__.setdefault("_summary_writers", {})
        if str(folder) not in writers:
            writers[str(folder)] = tf.summary.create_file_writer(str(folder))
        writer = writers[str(folder)]
        with writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, float(value), step=epoch)
        writer.flush()

    def save_checkpoint(self, path: Path) -> None:
        with atomic_path(Path(path), suffix=".keras") as temporary:  # Keras refuses names not ending in .keras
            self.network.save(temporary)
            with zipfile.ZipFile(temporary, "a") as archive:
                archive.writestr(DESCRIPTION_ENTRY, json.dumps(self.description))

    def load_checkpoint(self, path: Path) -> None:
        """Weights and optimiser state (step count, moments, learning rate) from a checkpoint of the same model."""
        path = Path(path)
        check_checkpoint_fits(path, _read_description(path), self.description)
        with self.strategy.scope():
            try:
                self.network.load_weights(path)
            except (ValueError, OSError, KeyError) as error:
                reason = first_line(error)
                raise ModelError(f"checkpoint '{path}' cannot be loaded ({reason}); use another checkpoint") from None

    def load_weights(self, path: Path) -> None:
        """The network's weights alone from a checkpoint of the same model, for fine-tuning: the optimiser,
        its step count and the learning rate stay as built, so a new run starts afresh from these weights.

        Keras loads a compiled network's optimiser state along with its weights, so the optimiser's
        variables are put back afterwards; its warning about a checkpoint of another optimiser is moot.
        """
        path = Path(path)
        check_checkpoint_fits(path, _read_description(path), self.description)
        fresh = [variable.numpy() for variable in self.optimizer.variables]
        with self.strategy.scope():
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                    self.network.load_weights(path)
            except (ValueError, OSError, KeyError) as error:
                reason = first_line(error)
                raise ModelError(f"checkpoint '{path}' cannot be loaded ({reason}); use another checkpoint") from None
            for variable, value in zip(self.optimizer.variables, fresh, strict=True):
                variable.assign(value)

    def freeze(self, prefixes: Sequence[str]) -> None:
        """Stop training the layers under `prefixes`: layer names, a nested model's layers as "outer/inner".

        Keras runs a frozen batch normalisation in inference mode, so its statistics stay too. The
        training step is traced anew, since a traced step keeps the variables it was traced with.
        """
        layers = _layers_with_weights(self.network)
        for name in names_under(prefixes, list(layers), separator="/", kind="layer with weights"):
            layers[name].trainable = False
        self._train_step = tf.function(self._distributed_train_step, reduce_retracing=True)

    def _distribute(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[Any, Any]:
        """Split this worker's batch across its local devices (a no-op with one device)."""
        inputs = np.asarray(inputs, dtype=np.float32)
        targets = np.asarray(targets, dtype=np.float32)
        if self._local_devices == 1:
            return inputs, targets
        return self._split(inputs), self._split(targets)

    def _split(self, array: np.ndarray) -> Any:
        parts = np.array_split(array, self._local_devices)
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: parts[context.replica_id_in_sync_group % self._local_devices]
        )

    def _distributed_train_step(self, inputs: Any, targets: Any) -> dict[str, tf.Tensor]:
        return self._reduce(self.strategy.run(self._train_replica, args=(inputs, targets)))

    def _distributed_evaluate_step(self, inputs: Any, targets: Any) -> dict[str, tf.Tensor]:
        return self._reduce(self.strategy.run(self._evaluate_replica, args=(inputs, targets)))

    def _train_replica(self, inputs: tf.Tensor, targets: tf.Tensor) -> dict[str, tf.Tensor]:
        share = _batch_share(inputs)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            outputs = tf.cast(self.network(inputs, training=True), tf.float32)
            loss = self._replica_loss(targets, outputs, inputs, share)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self._average_statistics()
        return self._measure(loss, outputs, share)

    def _average_statistics(self) -> None:
        """Keras updates batch-norm moving statistics per replica; without averaging, replicas fed different
        batches (multi-worker, mirrored) would each keep, and save, statistics of their own share only."""
        if self.strategy.num_replicas_in_sync == 1:
            return
        context = tf.distribute.get_replica_context()
        for variable in self.network.non_trainable_weights:  # not the dropout seeds, which are integers
            if variable.dtype.startswith("float"):
                variable.assign(context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(variable.value)))

    def _evaluate_replica(self, inputs: tf.Tensor, targets: tf.Tensor) -> dict[str, tf.Tensor]:
        share = _batch_share(inputs)
        outputs = tf.cast(self.network(inputs, training=False), tf.float32)
        return self._measure(self._replica_loss(targets, outputs, inputs, share), outputs, share)

    def _replica_loss(self, targets: tf.Tensor, outputs: tf.Tensor, inputs: tf.Tensor, share: tf.Tensor) -> tf.Tensor:
        """This replica's part of the loss, so that summing over replicas gives the one-device value."""
        value = self._loss.function(targets, outputs, inputs)
        return value if self._loss.summed else tf.math.multiply_no_nan(value, share)

    def _measure(self, loss: tf.Tensor, outputs: tf.Tensor, share: tf.Tensor) -> dict[str, tf.Tensor]:
        measured = {"loss": loss}
        for name, metric in self._metrics.items():
            value = metric.function(outputs)
            # A maximum is gathered from every replica (tf.distribute can only sum or average), so it needs a shape.
            measured[name] = tf.math.multiply_no_nan(value, share) if metric.reduction == "mean" else value[None]
        return measured

    def _reduce(self, values: dict[str, Any]) -> dict[str, tf.Tensor]:
        reduced = {"loss": self.strategy.reduce(tf.distribute.ReduceOp.SUM, values["loss"], axis=None)}
        for name, metric in self._metrics.items():
            if metric.reduction == "max":
                reduced[name] = tf.reduce_max(self.strategy.gather(values[name], axis=0))
            else:
                reduced[name] = self.strategy.reduce(tf.distribute.ReduceOp.SUM, values[name], axis=None)
        return reduced


def _layers_with_weights(network: keras.Model) -> dict[str, keras.layers.Layer]:
    """Every layer that holds weights by its name, a nested model's layers as "outer/inner", in network order."""
    found: dict[str, keras.layers.Layer] = {}

    def visit(layer: keras.layers.Layer, name: str) -> None:
        if layer.weights:
            found[name] = layer
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                visit(inner, f"{name}/{inner.name}")

    for layer in network.layers:
        visit(layer, layer.name)
    return found


def _batch_share(inputs: tf.Tensor) -> tf.Tensor:
    """This replica's fraction of the examples in the step, over all replicas and workers."""
    count = tf.cast(tf.shape(inputs)[0], tf.float32)
    total = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, count)
    return tf.math.divide_no_nan(count, total)


def float32_copy(network: keras.Model) -> keras.Model:
    """`network` computing in float32, with the same weights (mixed precision keeps them in float32).

    An exported graph is float32 for two reasons: the runtime separates on any CPU, and tf2onnx
    writes a mixed-precision network with float16 and bfloat16 inputs to the same MatMul, which
    onnxruntime refuses to load.
    """
    def float32_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    with _dtype_policy("float32"):
        copy = keras.models.clone_model(network, clone_function=float32_layer)
    copy.set_weights(network.get_weights())
    return copy


def dtype_policy(mixed_precision: bool) -> str:
    """The Keras dtype policy `mixed_precision` stands for on this machine."""
    if not mixed_precision:
        return "float32"
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    if cpu_has_bfloat16():
        return "mixed_bfloat16"
    return "float32"


def cpu_has_bfloat16() -> bool:
    """Whether the CPU computes bfloat16 natively; elsewhere oneDNN emulates it, slower than float32.

    Read from Linux's /proc/cpuinfo flags; other systems answer False, so they train in float32.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


@contextlib.contextmanager
def _dtype_policy(policy: str) -> Iterator[None]:
    """Layers take the policy current when they are created; restore it so other models are unaffected."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _read_description(path: Path) -> dict[str, Any]:
    """The checkpoint's unmix.json, after making sure the file is a whole Keras checkpoint."""
    if not path.is_file():
        raise ModelError(f"checkpoint '{path}' does not exist")
    torch_message = (
        f"checkpoint '{path}' was written by the PyTorch backend (unmix-torch); the Keras models read .keras "
        "checkpoints: select the torch model in the configuration, or use a .keras checkpoint"
    )
    if path.suffix in (".pt", ".pth"):
        raise ModelError(torch_message)
    damaged = f"checkpoint '{path}' is not a readable Keras checkpoint"
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{damaged} (not a .keras archive; it may have been cut short): use another checkpoint")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if any(name.endswith("data.pkl") for name in names):
                raise ModelError(torch_message)
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ModelError(f"{damaged} (config.json or model.weights.h5 is missing): use another checkpoint")
            broken = archive.testzip()
            if broken is not None:
                raise ModelError(f"{damaged} ({broken} is damaged): use another checkpoint")
            if DESCRIPTION_ENTRY not in names:
                raise ModelError(f"checkpoint '{path}' is a Keras model file but was not written by unmix")
            return json.loads(archive.read(DESCRIPTION_ENTRY))
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ModelError(f"{damaged} ({first_line(error)}): use another checkpoint") from None
