"""Speed of the Keras backend: training seconds per window, inference windows per second.

For configurations/mini/mini-hourglass.jsonc (the full 256-filter hourglass, 12.5 M parameters)
and configurations/splitstrument/guitar_full.jsonc (192 filters, 7.7 M), on synthetic 769 x 64
windows: a few training steps (forward and backward, batch of --batch-size windows) after one
untimed step that compiles the graph, then prediction. Also compares two ways of feeding the
training step on a tiny hourglass: numpy batches straight into the compiled step (what
`unmix.tf.model` does) against a `tf.data.Dataset.from_generator` pipeline with prefetch. And
the training step of configurations/cpu/band-hourglass.jsonc (its batch of 16 windows of 1537 x 64)
in float32 against `mixed_precision` on, which on a CPU with bfloat16 instructions (AVX512-BF16,
AMX) computes in bfloat16 and elsewhere stays float32: the ratio says what such a CPU gains.

Run: `python benchmarks/bench_tf_training.py [--steps 3] [--batch-size 2] [--skip-large]`.
It prints one JSON object per measurement; the device (CPU or GPU name) is in each line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from unmix.core.config.loader import load_configuration  # noqa: E402
from unmix.core.config.schema import (  # noqa: E402
    Configuration,
    Model,
    SpectrogramGeneration,
    Training,
    Transformation,
    TransformationOptions,
)
from unmix.core.plugins import plugin_manager  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

CONFIGURATIONS = Path(__file__).resolve().parents[1] / "configurations"


def device() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    return f"{cpu_model()} ({os.cpu_count()} cores, tensorflow intra-op threads {threads})"


def half_gain_batches(count: int, batch_size: int, shape: tuple[int, ...], work_seconds: float = 0.0
                      ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Synthetic batches; `work_seconds` stands in for the data pipeline's own work per batch."""
    generator = np.random.default_rng(0)
    for _ in range(count):
        inputs = generator.random((batch_size, *shape), dtype=np.float32)
        if work_seconds:
            time.sleep(work_seconds)
        yield inputs, 0.5 * inputs


def build(settings: Configuration, shape: tuple[int, int, int]):
    """Models are registered per backend: "tensorflow:hourglass"."""
    key = f"{settings.training.backend}:{settings.training.model.name}"
    return plugin_manager().get("models", key)(settings, shape)


def shipped_configuration(relative: str) -> tuple[Configuration, tuple[int, int, int]]:
    """A configuration under configurations/ and the (bins, frames, channels) window its model takes."""
    settings = load_configuration(CONFIGURATIONS / relative, environment={}).settings
    shape = (settings.spectrogram_generation.fft_length // 2 + 1, settings.transformation.options.size,
             settings.channels)
    return settings, shape


def bench_configuration(relative: str, steps: int, batch_size: int, predict_windows: int) -> dict:
    settings, shape = shipped_configuration(relative)
    started = time.perf_counter()
    model = build(settings, shape)
    build_seconds = time.perf_counter() - started

    started = time.perf_counter()
    model.train_epoch(half_gain_batches(1, batch_size, shape), 1, lambda step, running: None)
    first_step = time.perf_counter() - started
    started = time.perf_counter()
    model.train_epoch(half_gain_batches(steps, batch_size, shape), steps, lambda step, running: None)
    per_step = (time.perf_counter() - started) / steps

    windows = next(half_gain_batches(1, predict_windows, shape))[0]
    model.predict(windows[:batch_size])
    started = time.perf_counter()
    for start in range(0, len(windows), batch_size):
        model.predict(windows[start:start + batch_size])
    predict_seconds = time.perf_counter() - started
    return {
        "benchmark": "train_and_predict",
        "configuration": relative,
        "device": device(),
        "trainable_parameters": model.trainable_parameters(),
        "input_shape": list(shape),
        "batch_size": batch_size,
        "steps": steps,
        "build_seconds": round(build_seconds, 2),
        "first_step_seconds": round(first_step, 2),
        "seconds_per_step": round(per_step, 3),
        "training_seconds_per_window": round(per_step / batch_size, 3),
        "inference_windows_per_second": round(predict_windows / predict_seconds, 3),
    }


def bench_feeding(steps: int, work_seconds: float, repeats: int = 2) -> dict:
    """Direct numpy feeding against tf.data + prefetch, on a network small enough for feeding to matter."""
    shape, batch_size = (65, 8, 1), 2
    settings = Configuration(
        spectrogram_generation=SpectrogramGeneration(fft_length=128),
        transformation=Transformation(options=TransformationOptions(size=8, step=8)),
        training=Training(model=Model(name="hourglass", options={"stacks": 2, "hg_module": {"filters": 8}}),
                          batch_size=batch_size),
    )
    model = build(settings, shape)
    spec = tf.TensorSpec((None, *shape), tf.float32)

    def direct() -> float:
        started = time.perf_counter()
        model.train_epoch(half_gain_batches(steps, batch_size, shape, work_seconds), steps, lambda step, running: None)
        return (time.perf_counter() - started) / steps

    def prefetched() -> float:
        started = time.perf_counter()
        dataset = tf.data.Dataset.from_generator(
            lambda: half_gain_batches(steps, batch_size, shape, work_seconds), output_signature=(spec, spec)
        ).prefetch(2)
        for inputs, targets in dataset:
            # The model's own compiled step (a private method), fed with tensors from the pipeline.
            {name: float(value) for name, value in model._train_step(inputs, targets).items()}
        return (time.perf_counter() - started) / steps

    direct()
    prefetched()
    return {
        "benchmark": "feeding",
        "device": device(),
        "network": "hourglass stacks 2, filters 8, 65 x 8 windows, batch 2",
        "pipeline_work_ms_per_batch": work_seconds * 1000,
        "direct_ms_per_step": round(min(direct() for _ in range(repeats)) * 1000, 1),
        "tf_data_prefetch_ms_per_step": round(min(prefetched() for _ in range(repeats)) * 1000, 1),
    }


def bench_precision(relative: str, steps: int, rounds: int = 2) -> dict:
    """The configuration's training step in float32 and in mixed precision, alternating rounds, best of each."""
    settings, shape = shipped_configuration(relative)
    batch_size = settings.training.batch_size
    model_settings = settings.training.model
    mixed = attrs.evolve(settings, training=attrs.evolve(settings.training, model=attrs.evolve(
        model_settings, options={**model_settings.options, "mixed_precision": True})))
    models = {"float32": build(settings, shape), "mixed_precision": build(mixed, shape)}
    best = dict.fromkeys(models, float("inf"))
    for model in models.values():
        model.train_epoch(half_gain_batches(1, batch_size, shape), 1, lambda step, running: None)
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            model.train_epoch(half_gain_batches(steps, batch_size, shape), steps, lambda step, running: None)
            best[name] = min(best[name], (time.perf_counter() - started) / steps)
    return {
        "benchmark": "training_precision",
        "configuration": relative,
        "device": device(),
        "mixed_precision_computes_in": models["mixed_precision"].precision,
        "batch_size": batch_size,
        "input_shape": list(shape),
        "float32_seconds_per_step": round(best["float32"], 3),
        "mixed_precision_seconds_per_step": round(best["mixed_precision"], 3),
        "speedup": round(best["float32"] / best["mixed_precision"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per configuration")
    parser.add_argument("--batch-size", type=int, default=2, help="windows per training step")
    parser.add_argument("--predict-windows", type=int, default=8)
    parser.add_argument("--skip-large", action="store_true", help="only the feeding comparison")
    arguments = parser.parse_args()
    print(json.dumps(bench_precision("cpu/band-hourglass.jsonc", steps=10)), flush=True)
    for work_seconds in (0.0, 0.01):
        print(json.dumps(bench_feeding(steps=100, work_seconds=work_seconds)), flush=True)
    if not arguments.skip_large:
        for relative in ("mini/mini-hourglass.jsonc", "splitstrument/guitar_full.jsonc"):
            result = bench_configuration(relative, arguments.steps, arguments.batch_size, arguments.predict_windows)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
