"""Separation engines side by side: TensorFlow, PyTorch and onnxruntime running the same models, next to Open-Unmix.

The band hourglass (configurations/cpu/band-hourglass.jsonc) runs on its Keras backend, on its
torch backend, and as ONNX files exported from each (`unmix export`) on onnxruntime; the small
RoFormer (configurations/cpu/roformer-small.jsonc, a waveform model) on torch and as its ONNX export
(the graph between its STFT and inverse STFT; the runtime does those in NumPy). Weights are random:
speed does not depend on what a model learned.

Two tables, both on the same 3-minute stereo 44.1 kHz mp3:
- in one process, like for like (the same decoder, resampler and writer for every system, as in
  bench_prediction.py), best of `--rounds` turns taken in rotation, with Open-Unmix's recipe network
  at the band hourglass's rate;
- each engine as the whole `unmix predict` command in its own process: wall time (start-up and
  model loading included) and peak RSS (a run folder with `--engine framework`, an export with `--model`).
Then the engine overhead on onnxruntime, measured as bench_prediction.py measures it for the
framework: the small hourglass (configurations/cpu/small-hourglass.jsonc), whose network dominates
the work, separating the song against its bare network over the same windows (target: at most 1.2;
the band hourglass's network is so cheap that decoding and the STFTs outweigh it).

Run: `python benchmarks/bench_runtimes.py [--threads N] [--rounds 2]` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from bench_prediction import (  # noqa: E402
    BAND,
    ROFORMER,
    SMALL,
    open_unmix_contender,
    print_race,
    race,
    timed_cli_predict,
    timed_separation,
    unmix_contender,
    untrained_run,
    write_song,
)
from machine import default_threads, describe_cpu, describe_threads, use_threads  # noqa: E402


def exported(run: Path) -> Path:
    from unmix.onnx.export import export_run

    return export_run(run).path


def onnx_engine_overhead(model_file: Path, song: Path, folder: Path) -> tuple[float, float, int]:
    """(engine seconds, bare network seconds, windows) for the onnxruntime engine on `song`."""
    from unmix.core import api
    from unmix.core.data.windows import song_frame_count, window_count

    engine = api.create_engine(model_file)
    folder.mkdir(parents=True, exist_ok=True)
    engine_seconds, result = timed_separation(engine, song, folder)
    model_samples = int(round(result.seconds * engine.sample_rate))
    frames = song_frame_count(model_samples, engine.settings.hop_length)
    shape = engine.model.input_shape
    channels_separately = 2 // shape[-1]
    windows = channels_separately * window_count(frames, engine.transform.size, engine.transform.step)
    inputs = np.random.default_rng(0).random((windows, *shape), dtype=np.float32)
    start = time.perf_counter()
    for first in range(0, windows, engine.batch_size):
        engine.model.predict(inputs[first:first + engine.batch_size])
    return engine_seconds, time.perf_counter() - start, windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="threads for PyTorch, TensorFlow and `unmix` subprocesses alike [default: every core]")
    parser.add_argument("--rounds", type=int, default=2, help="turns each system takes in the in-process race")
    arguments = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    use_threads(arguments.threads)
    print(f"CPU: {describe_cpu()}; threads: {describe_threads()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="unmix-bench-runtimes-") as temporary:
        folder = Path(temporary)
        song = write_song(folder / "three-minutes.mp3", 180.0)
        band_tf = untrained_run(BAND, folder / "band-tf")
        band_torch = untrained_run(BAND, folder / "band-torch", backend="torch")
        roformer = untrained_run(ROFORMER, folder / "roformer")
        engines = {
            "band hourglass, tensorflow": band_tf,
            "band hourglass, torch": band_torch,
            "band hourglass, onnxruntime (from tensorflow)": exported(band_tf),
            "band hourglass, onnxruntime (from torch)": exported(band_torch),
            "small RoFormer, torch": roformer,
            "small RoFormer, onnxruntime": exported(roformer),
        }
        contenders = [unmix_contender(name, model) for name, model in engines.items()]
        umx = open_unmix_contender(contenders[0].model_rate)
        contenders += [umx] if umx is not None else []
        race(contenders, song, write_song(folder / "warm.mp3", 2.0), folder, arguments.rounds)
        print_race(contenders, soundfile.info(song).duration, arguments.rounds)
        if umx is not None:
            for contender in contenders[:-1]:
                print(f"  {contender.name}: {umx.best_seconds / contender.best_seconds:.2f}x Open-Unmix's speed")

        print("\nthe whole `unmix predict` command, one process per engine (start-up and model loading included)")
        print(f"  {'engine':<48}{'seconds':>9}{'x real time':>13}{'peak RSS':>11}")
        for name, model in engines.items():
            # A run folder with an export would separate with it: --engine framework keeps the framework.
            engine = ["--engine", "framework"] if model.is_dir() else []
            seconds, measured = timed_cli_predict(model, song, folder / "cli" / name.replace(" ", "_"), "--overwrite",
                                                  *engine)
            print(f"  {name:<48}{seconds:>9.1f}{180.0 / seconds:>12.1f}x{measured['peak_rss_mb']:>8.0f} MB",
                  flush=True)

        small = exported(untrained_run(SMALL, folder / "small"))
        engine_seconds, network_seconds, windows = onnx_engine_overhead(small, song, folder / "overhead")
        overhead = engine_seconds / network_seconds
        print(f"\nengine_overhead_onnxruntime {overhead:.2f} (small hourglass: engine {engine_seconds:.1f} s / bare "
              f"network {network_seconds:.1f} s over {windows} windows; target <= 1.2: "
              f"{'ok' if overhead <= 1.2 else 'MISSED'})")
    print(f"CPU: {describe_cpu()}", flush=True)


if __name__ == "__main__":
    main()
