"""Prediction speed and memory: `unmix predict` against the network's own limit, one model call
per window, and Open-Unmix like for like; peak memory for a 5- and a 60-minute song.

Targets (issue 5): engine overhead (predict wall time / bare network time over the same windows)
at most 1.2; at least 3x faster than calling the model once per window; peak RSS for 60 minutes
within 10% of 5 minutes, for the spectrogram engine and the waveform engine alike. Issue 9: the
band hourglass separates at least as fast as Open-Unmix on the same song; the small RoFormer (a
waveform model) runs in the same race. Models have random weights: speed does not depend on what
they learned.

The Open-Unmix comparison is like for like: one process, one thread count for PyTorch and
TensorFlow (`--threads`, default every core; printed with the CPU), and for every system the same
steps in the same code: decode the same 3-minute stereo 44.1 kHz mp3, resample to the model's rate,
separate the whole song, resample back and write both stems as 16-bit wav. The table gives each
system's model rate and how it treats the two channels. The ratio the target checks is against
Open-Unmix at the band hourglass's rate (22.05 kHz, n_fft 2048: how `nox -s bench-quality` trains
it); Open-Unmix at its published 44.1 kHz (n_fft 4096) is printed as well. The systems take turns
(`--rounds`) and each keeps its best time, so a burst of load from a neighbour lands on no one
system only.

Run: `python benchmarks/bench_prediction.py [--threads N] [--rounds 2]` (about 15 minutes on 2
cores; `--quick` skips the 60-minute songs and the full-size network; `--compare-only` runs the
Open-Unmix comparison alone, `--memory-only` the 5- and 60-minute songs alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import soundfile

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from machine import default_threads, describe_cpu, describe_threads, use_threads  # noqa: E402

CONFIGURATIONS = REPOSITORY / "configurations"
SMALL = CONFIGURATIONS / "cpu" / "small-hourglass.jsonc"
BAND = CONFIGURATIONS / "cpu" / "band-hourglass.jsonc"
ROFORMER = CONFIGURATIONS / "cpu" / "roformer-small.jsonc"
FULL = CONFIGURATIONS / "splitstrument" / "guitar_full.jsonc"
# A deliberately tiny network for the memory runs: there the engine, not the network, is measured.
TINY_OPTIONS = {"stacks": 2, "initial_convolutions": {"filters": [4, 4, 4, 4, 4]}, "hg_module": {"filters": 4},
                "hg_module_end": {"filters": 4}}
TINY_ROFORMER_OPTIONS = {"dim": 16, "depth": 1, "heads": 2, "dim_head": 8}


def write_song(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> Path:
    """Music-like test audio: a few harmonic voices with vibrato and noise, written in 60 s blocks."""
    rng = np.random.default_rng(0)
    wav = path.with_suffix(".wav")
    with soundfile.SoundFile(wav, "w", rate, channels, subtype="PCM_16") as handle:
        for start in np.arange(0, seconds, 60.0):
            time_axis = np.arange(int(min(60.0, seconds - start) * rate)) / rate + start
            voices = sum(np.sin(2 * np.pi * f * time_axis + 3 * np.sin(2 * np.pi * 5 * time_axis)) / (i + 1)
                         for i, f in enumerate((220.0, 330.0, 440.0, 660.0)))
            block = 0.15 * voices[:, None] + rng.normal(0, 0.02, (time_axis.size, channels))
            handle.write(block.astype(np.float32))
    if path.suffix == ".wav":
        return wav
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-b:a", "192k", str(path)], check=True)
    wav.unlink()
    return path


def untrained_run(configuration: Path, folder: Path, options: dict | None = None, backend: str | None = None) -> Path:
    """A run folder holding a randomly initialised model of `configuration` (on `backend`, if given)."""
    from unmix.core.config.loader import load_configuration
    from unmix.core.data.transforms import create_transform
    from unmix.core.models.factory import build_model, describe_model
    from unmix.core.runs import create_run_folder

    folder.mkdir(parents=True, exist_ok=True)
    child = folder / f"{configuration.stem}.jsonc"
    overrides = {"base": str(configuration.resolve()), "training": {"callbacks": {"tensorboard": {"enabled": False}}}}
    if options is not None:
        overrides["training"]["model"] = {"options": options}
    if backend is not None:
        overrides["training"]["backend"] = backend
    child.write_text(json.dumps(overrides))
    loaded = load_configuration(child)
    settings = loaded.settings
    input_shape = create_transform(settings).input_shape(settings.spectrogram_generation.fft_length // 2 + 1,
                                                         settings.channels)
    model = build_model(loaded, input_shape)
    run = create_run_folder(loaded, folder)
    run.write_json(run.model_file, describe_model(model, loaded, input_shape))
    model.save_checkpoint(run.folder("weights") / f"best{model.checkpoint_suffix}")
    return run.path


def timed_cli_predict(run: Path, song: Path, output: Path, *extra: str) -> tuple[float, dict]:
    """Wall time and peak RSS (MB) of `unmix predict` in its own process; `run` may be an exported model file."""
    unmix = Path(sys.executable).parent / "unmix"
    model = ["--model" if run.is_file() else "--run-folder", str(run)]
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", str(unmix), "predict", *model,
                             "--song", str(song), "--output", str(output), *extra],
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return elapsed, {"peak_rss_mb": peak_kb / 1024}


class SeedPerWindowModel:
    """The original's inference loop: Keras `model.predict` called once per window."""

    def __init__(self, model) -> None:
        self.model = model
        self.network = getattr(model, "network", None)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        if self.network is None:
            return np.concatenate([self.model.predict(window[None]) for window in inputs])
        return np.concatenate([self.network.predict(window[None], verbose=0) for window in inputs])


def timed_separation(engine, song: Path, folder: Path) -> tuple[float, object]:
    """Wall seconds for the engine to separate `song` into wav stems, after a short warm-up song."""
    from unmix.core.interfaces import ExportOptions
    from unmix.core.separation.prediction import exporter_for, separate_file

    warm = write_song(folder / "warm.wav", 2.0)
    separate_file(engine, warm, folder / "warm", exporter_for("wav"), ExportOptions(), "{song}_{stem}.{ext}",
                  progress=False)
    start = time.perf_counter()
    result = separate_file(engine, song, folder / "engine", exporter_for("wav"), ExportOptions(),
                           "{song}_{stem}.{ext}", progress=False)
    return time.perf_counter() - start, result


def engine_overhead(run: Path, song: Path, folder: Path) -> dict:
    """In one process: separate the song, then run the bare network over as many windows."""
    from unmix.core import api
    from unmix.core.data.windows import song_frame_count, window_count
    from unmix.core.interfaces import ExportOptions
    from unmix.core.separation.prediction import exporter_for, separate_file

    engine = api.create_engine(run)
    info = soundfile.info(song) if song.suffix == ".wav" else None
    engine_seconds, result = timed_separation(engine, song, folder)

    channels = info.channels if info else 2
    model_samples = int(round(result.seconds * engine.sample_rate))
    frames = song_frame_count(model_samples, engine.settings.hop_length)
    windows = channels * window_count(frames, engine.transform.size, engine.transform.step)
    bins = engine.settings.spectrogram_generation.fft_length // 2 + 1
    inputs = np.random.default_rng(0).random((windows, bins, engine.transform.size, 1), dtype=np.float32)
    start = time.perf_counter()
    for first in range(0, windows, engine.batch_size):
        engine.model.predict(inputs[first:first + engine.batch_size])
    network_seconds = time.perf_counter() - start

    engine.model = SeedPerWindowModel(engine.model)
    start = time.perf_counter()
    separate_file(engine, song, folder / "per-window", exporter_for("wav"), ExportOptions(), "{song}_{stem}.{ext}",
                  progress=False)
    per_window_seconds = time.perf_counter() - start
    return {"audio_seconds": result.seconds, "windows": windows, "engine_seconds": engine_seconds,
            "network_seconds": network_seconds, "per_window_seconds": per_window_seconds}


@attrs.define
class Contender:
    """One system in the like-for-like table: how it separates a whole song at its model rate, and its best time."""

    name: str
    model_rate: int
    channels: str
    fft: str
    separate_samples: Callable[[np.ndarray], np.ndarray]
    best_seconds: float = math.inf


def separate_file_in_memory(contender: Contender, song: Path, output: Path) -> float:
    """Wall seconds to decode, resample, separate the whole song, resample back and write both stems.

    The same steps and code for every contender, so that only the network and its STFTs differ.
    """
    from unmix.core.data.streaming import AudioReader, Resampler

    start = time.perf_counter()
    reader = AudioReader(song)
    rate, channels = reader.info.sample_rate, reader.info.channels
    mix = np.concatenate(list(reader.blocks(65536)), axis=1)
    reader.close()
    model_mix = Resampler(rate, contender.model_rate, channels).process(mix, last=True)
    target = Resampler(contender.model_rate, rate, channels).process(contender.separate_samples(model_mix), last=True)
    target = np.pad(target, ((0, 0), (0, max(0, mix.shape[1] - target.shape[1]))))[:, :mix.shape[1]]
    output.mkdir(parents=True, exist_ok=True)
    soundfile.write(output / "target.wav", target.T, rate, subtype="PCM_16")
    soundfile.write(output / "rest.wav", (mix - target).T, rate, subtype="PCM_16")
    return time.perf_counter() - start


def unmix_contender(name: str, run: Path) -> Contender:
    """An unmix engine in the race; the race's song is stereo, which a mono model separates channel by channel."""
    from unmix.core import api

    engine = api.create_engine(run)
    channels = "2, each as mono" if engine.settings.channels == 1 else f"{engine.settings.channels}, jointly"
    # A waveform model's STFT (if any) is inside the network, set by its own options.
    options = engine.settings.training.model.options
    fft = (str(options.get("stft_n_fft", "-")) if engine.settings.transformation.name == "waveform"
           else str(engine.settings.spectrogram_generation.fft_length))
    return Contender(name, engine.sample_rate, channels, fft, engine.separate_samples)


def open_unmix_contender(sample_rate: int) -> Contender | None:
    """Open-Unmix's recipe network (random weights) post-processed as unmix's engine is; None if not installed."""
    try:
        from open_unmix_baseline import untrained_open_unmix
    except ImportError:
        return None
    run = untrained_open_unmix(sample_rate, channels=2)
    return Contender("Open-Unmix (torch, recipe network)", sample_rate, "2, jointly", str(run.n_fft),
                     run.separate_samples)


def race(contenders: list[Contender], song: Path, warm: Path, folder: Path, rounds: int) -> None:
    """Each contender separates a short song untimed, then all take `rounds` turns on `song`; best times kept."""
    for contender in contenders:
        separate_file_in_memory(contender, warm, folder / "warm")
    for _ in range(rounds):
        for contender in contenders:
            seconds = separate_file_in_memory(contender, song, folder / "like-for-like")
            contender.best_seconds = min(contender.best_seconds, seconds)


def print_race(contenders: list[Contender], audio_seconds: float, rounds: int) -> None:
    print(f"like for like: {audio_seconds:.0f} s stereo 44.1 kHz mp3 in, two 16-bit wav stems out, the same decoder, "
          f"resampler and writer; one process; best of {rounds}")
    print(f"  CPU: {describe_cpu()}")
    print(f"  threads: {describe_threads()}")
    print(f"  {'system':<42}{'model rate':>11}  {'channels':<17}{'fft':>6}{'seconds':>9}{'x real time':>13}")
    for contender in contenders:
        print(f"  {contender.name:<42}{contender.model_rate:>8} Hz  {contender.channels:<17}{contender.fft:>6}"
              f"{contender.best_seconds:>9.2f}{audio_seconds / contender.best_seconds:>12.1f}x")


def print_ratio(label: str, unmix: Contender, umx: Contender | None, target: float | None) -> None:
    """How many times faster `unmix` separated than `umx` (above 1: faster), against `target` when there is one."""
    if umx is None:
        print("open_unmix unavailable (pip install openunmix==1.3.0 --no-deps to compare)")
        return
    ratio = umx.best_seconds / unmix.best_seconds
    verdict = "" if target is None else f"; target >= {target:g}: {'ok' if ratio >= target else 'MISSED'}"
    print(f"speed_ratio_{label} {ratio:.2f} ({unmix.model_rate} Hz {unmix.name} against Open-Unmix at "
          f"{umx.model_rate} Hz, n_fft {umx.fft}{verdict})")


def like_for_like(small: Path, band: Path, roformer: Path, song: Path, folder: Path, rounds: int) -> None:
    band_contender = unmix_contender("band hourglass (unmix, tensorflow)", band)
    small_contender = unmix_contender("small hourglass (unmix, tensorflow)", small)
    roformer_contender = unmix_contender("small RoFormer (unmix, torch, waveform)", roformer)
    same_rate = open_unmix_contender(band_contender.model_rate)
    published = open_unmix_contender(44100)
    contenders = [band_contender, small_contender, roformer_contender,
                  *(c for c in (same_rate, published) if c is not None)]
    race(contenders, song, write_song(folder / "warm.mp3", 2.0), folder, rounds)
    print_race(contenders, soundfile.info(song).duration, rounds)
    print_ratio("band_vs_open_unmix", band_contender, same_rate, target=1.0)
    print_ratio("band_vs_open_unmix_44k", band_contender, published, target=None)
    print_ratio("small_vs_open_unmix", small_contender, same_rate, target=None)
    print_ratio("roformer_small_vs_open_unmix", roformer_contender, same_rate, target=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 60-minute song and the full-size network")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="threads for PyTorch, TensorFlow and `unmix` subprocesses alike [default: every core]")
    parser.add_argument("--rounds", type=int, default=2, help="turns each system takes in the like-for-like race")
    parser.add_argument("--compare-only", action="store_true", help="only the like-for-like race against Open-Unmix")
    parser.add_argument("--memory-only", action="store_true", help="only the peak memory of 5- and 60-minute songs")
    arguments = parser.parse_args()
    quick = arguments.quick
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    use_threads(arguments.threads)
    print(f"CPU: {describe_cpu()}; threads: {describe_threads()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="unmix-bench-") as temporary:
        folder = Path(temporary)
        if arguments.memory_only:
            memory_for_long_songs(folder)
            return
        song = write_song(folder / "three-minutes.mp3", 180.0)
        small = untrained_run(SMALL, folder / "small")
        if arguments.compare_only:
            like_for_like(small, untrained_run(BAND, folder / "band"), untrained_run(ROFORMER, folder / "roformer"),
                          song, folder, arguments.rounds)
            return
        elapsed, _ = timed_cli_predict(small, song, folder / "out-small")
        print(f"predict_rtf_small {180.0 / elapsed:.2f}x real time (small hourglass, 3 min stereo 44.1 kHz mp3, "
              f"whole command incl. start-up {elapsed:.1f} s)")

        numbers = engine_overhead(small, song, folder)
        overhead = numbers["engine_seconds"] / numbers["network_seconds"]
        speedup = numbers["per_window_seconds"] / numbers["engine_seconds"]
        print(f"engine_overhead {overhead:.2f} (engine {numbers['engine_seconds']:.1f} s / bare network "
              f"{numbers['network_seconds']:.1f} s over {numbers['windows']} windows; target <= 1.2: "
              f"{'ok' if overhead <= 1.2 else 'MISSED'})")
        print(f"batched_vs_per_window {speedup:.1f}x (one Keras predict call per window, as the seed: "
              f"{numbers['per_window_seconds']:.1f} s; target >= 3: {'ok' if speedup >= 3 else 'MISSED'})")

        like_for_like(small, untrained_run(BAND, folder / "band"), untrained_run(ROFORMER, folder / "roformer"),
                      song, folder, arguments.rounds)

        if quick:
            return
        excerpt = write_song(folder / "twenty-seconds.mp3", 20.0)
        full = untrained_run(FULL, folder / "full")
        elapsed, _ = timed_cli_predict(full, excerpt, folder / "out-full")
        print(f"predict_rtf_guitar_full {20.0 / elapsed:.3f}x real time (splitstrument network, 20 s stereo "
              f"44.1 kHz mp3, whole command {elapsed:.1f} s)")

        memory_for_long_songs(folder)


def memory_for_long_songs(folder: Path) -> None:
    """Peak RSS of `unmix predict` on a 5- and a 60-minute song, for each model kind's engine: a tiny
    hourglass (spectrogram windows) and a tiny RoFormer (cross-faded waveform chunks)."""
    runs = {"spectrogram": untrained_run(SMALL, folder / "tiny", TINY_OPTIONS),
            "waveform": untrained_run(ROFORMER, folder / "tiny-roformer", TINY_ROFORMER_OPTIONS)}
    songs = {minutes: write_song(folder / f"{minutes}-minutes.wav", minutes * 60.0) for minutes in (5, 60)}
    for kind, run in runs.items():
        peaks = {}
        for minutes, long_song in songs.items():
            elapsed, measured = timed_cli_predict(run, long_song, folder / f"out-{kind}-{minutes}", "--overwrite")
            peaks[minutes] = measured["peak_rss_mb"]
            print(f"peak_rss_{kind}_{minutes}_minutes {peaks[minutes]:.0f} MB ({elapsed:.0f} s, tiny {kind} network)",
                  flush=True)
        ratio = peaks[60] / peaks[5]
        print(f"peak_rss_ratio_{kind}_60_to_5 {ratio:.3f} (target <= 1.10: {'ok' if ratio <= 1.10 else 'MISSED'})")


if __name__ == "__main__":
    main()
