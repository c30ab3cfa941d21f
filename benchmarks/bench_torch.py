"""The PyTorch hourglass next to the Keras one: training seconds per window, inference real-time factor.

Same configuration, same machine, same process, same synthetic data: for
configurations/quickstart.jsonc (the band hourglass: fft_length 3072, 64-frame windows) and
configurations/mini/mini-hourglass.jsonc (the seed's full-width network, stacks 6,
256 filters, batch norm: 12.5 M parameters), each backend builds the configuration's hourglass
with random weights (speed does not depend on what a network learned) and is timed on

- training: forward, backward and optimiser step on batches of --batch-size windows, after one
  untimed step (Keras compiles its graph there); seconds per window = step time / batch size;
- inference: `unmix.core.api.separate` on --seconds of synthetic audio at the configuration's
  rate (STFT, batched windows, overlap-add, inverse STFT: what `unmix predict` does per song),
  after an untimed one-second warm-up; real-time factor = audio seconds / wall seconds.

The backends take turns (--rounds times) and each keeps its best time, so a burst of load from
another process does not land on one backend only. Both backends get the same thread count
(--threads, every core by default: intra-op and inter-op alike), and the same audio in and out
(samples in memory, at the configuration's rate and channel count, both printed). On a machine
shared with other busy processes PyTorch's OpenMP threads, which spin while they wait, lose far
more than TensorFlow's pool: run once more with OMP_WAIT_POLICY=PASSIVE (or --threads 1) to see
how much of a gap is that. The CPU, the thread counts and the load average are printed before,
the load average after. Prints one JSON line per configuration and backend, then the torch/keras
ratios.

Run: `python benchmarks/bench_torch.py [--steps 2] [--batch-size 2] [--seconds 20] [--rounds 2] [--quick]
[--threads N]` (`--quick`: the quickstart configuration only; about 6 minutes in all on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import attrs  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

from unmix.core.api import separate  # noqa: E402
from unmix.core.config.loader import load_configuration  # noqa: E402
from unmix.core.config.schema import Configuration  # noqa: E402
from unmix.core.data.transforms import create_transform  # noqa: E402
from unmix.core.plugins import plugin_manager  # noqa: E402
from unmix.core.separation.prediction import Engine  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model, default_threads, describe_cpu, describe_threads, use_threads  # noqa: E402

CONFIGURATIONS = Path(__file__).resolve().parents[1] / "configurations"
BACKENDS = ("tensorflow", "torch")


def device() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    return (f"{cpu_model()} ({os.cpu_count()} cores; torch threads {torch.get_num_threads()}, tensorflow intra-op "
            f"threads {tf.config.threading.get_intra_op_parallelism_threads()}, OMP_WAIT_POLICY {policy})")


def with_backend(settings: Configuration, backend: str) -> Configuration:
    return attrs.evolve(settings, training=attrs.evolve(settings.training, backend=backend))


def input_shape(settings: Configuration) -> tuple[int, int, int]:
    return (settings.spectrogram_generation.fft_length // 2 + 1, settings.transformation.options.size,
            settings.channels)


def batches(count: int, batch_size: int, shape: tuple[int, int, int]):
    generator = np.random.default_rng(0)
    for _ in range(count):
        inputs = generator.random((batch_size, *shape), dtype=np.float32)
        yield inputs, 0.5 * inputs


def music(seconds: float, rate: int, channels: int) -> np.ndarray:
    time_axis = np.arange(int(seconds * rate)) / rate
    voices = sum(np.sin(2 * np.pi * f * time_axis) / (i + 1) for i, f in enumerate((220.0, 330.0, 440.0, 660.0)))
    noise = np.random.default_rng(1).normal(0, 0.02, (channels, time_axis.size))
    return (0.15 * voices[None] + noise).astype(np.float32)


class Subject:
    """One backend's model for one configuration, with its best times so far."""

    def __init__(self, settings: Configuration, backend: str, batch_size: int) -> None:
        self.settings = with_backend(settings, backend)
        self.backend = backend
        self.batch_size = batch_size
        started = time.perf_counter()
        key = f"{backend}:{self.settings.training.model.name}"
        self.model = plugin_manager().get("models", key)(self.settings, input_shape(self.settings))
        self.build_seconds = time.perf_counter() - started
        self.engine = Engine(model=self.model, transform=create_transform(self.settings), settings=self.settings,
                             batch_size=self.settings.prediction.batch_size)
        shape = input_shape(self.settings)
        self.model.train_epoch(batches(1, batch_size, shape), 1, lambda step, running: None)
        rate = self.settings.collection.sample_rate
        separate(self.engine, music(1.0, rate, self.settings.channels), rate)
        self.step_seconds = float("inf")
        self.realtime = 0.0

    def time_training(self, steps: int) -> None:
        started = time.perf_counter()
        shape = input_shape(self.settings)
        self.model.train_epoch(batches(steps, self.batch_size, shape), steps, lambda step, running: None)
        self.step_seconds = min(self.step_seconds, (time.perf_counter() - started) / steps)

    def time_inference(self, audio: np.ndarray) -> None:
        rate = self.settings.collection.sample_rate
        started = time.perf_counter()
        separate(self.engine, audio, rate)
        self.realtime = max(self.realtime, audio.shape[-1] / rate / (time.perf_counter() - started))

    def report(self, configuration: str, steps: int, seconds: float) -> dict:
        return {
            "benchmark": "torch_vs_keras",
            "configuration": configuration,
            "backend": self.backend,
            "device": device(),
            "trainable_parameters": self.model.trainable_parameters(),
            "input_shape": list(input_shape(self.settings)),
            "sample_rate": self.settings.collection.sample_rate,
            "channels": self.settings.channels,
            "batch_size": self.batch_size,
            "steps": steps,
            "build_seconds": round(self.build_seconds, 2),
            "training_seconds_per_window": round(self.step_seconds / self.batch_size, 3),
            "inference_audio_seconds": seconds,
            "inference_x_real_time": round(self.realtime, 3),
        }


def bench(configuration: str, steps: int, batch_size: int, seconds: float, rounds: int) -> None:
    settings = load_configuration(CONFIGURATIONS / configuration, environment={}).settings
    subjects = [Subject(settings, backend, batch_size) for backend in BACKENDS]
    rate = settings.collection.sample_rate
    audio = music(seconds, rate, settings.channels)
    for _ in range(rounds):
        for subject in subjects:
            subject.time_training(steps)
            subject.time_inference(audio)
    keras, torch_subject = (subject.report(configuration, steps, seconds) for subject in subjects)
    print(json.dumps(keras), flush=True)
    print(json.dumps(torch_subject), flush=True)
    train_ratio = torch_subject["training_seconds_per_window"] / keras["training_seconds_per_window"]
    infer_ratio = torch_subject["inference_x_real_time"] / keras["inference_x_real_time"]
    print(f"{configuration}: training s/window torch {torch_subject['training_seconds_per_window']} vs keras "
          f"{keras['training_seconds_per_window']} (torch/keras {train_ratio:.2f}, lower is faster); inference "
          f"torch {torch_subject['inference_x_real_time']}x vs keras {keras['inference_x_real_time']}x real time "
          f"(torch/keras {infer_ratio:.2f}, higher is faster)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per round")
    parser.add_argument("--batch-size", type=int, default=2, help="windows per training step")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio separated per inference round")
    parser.add_argument("--rounds", type=int, default=2, help="turns each backend takes; the best is kept")
    parser.add_argument("--quick", action="store_true", help="the quickstart configuration only")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="threads for PyTorch and TensorFlow alike [default: every core]")
    arguments = parser.parse_args()
    use_threads(arguments.threads)
    print(f"CPU: {describe_cpu()}; tensorflow {tf.__version__}, torch {torch.__version__}", flush=True)
    print(f"threads: {describe_threads()}", flush=True)
    configurations = ["quickstart.jsonc"] + ([] if arguments.quick else ["mini/mini-hourglass.jsonc"])
    for configuration in configurations:
        bench(configuration, arguments.steps, arguments.batch_size, arguments.seconds, arguments.rounds)
    print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
