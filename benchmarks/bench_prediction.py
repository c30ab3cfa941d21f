"""Prediction speed and memory: `unmix predict` against the network's own limit, the seed's
one-window-per-call loop, and Open-Unmix; peak memory for a 5- and a 60-minute song.

Targets (issue 5): engine overhead (predict wall time / bare network time over the same windows)
at most 1.2; at least 3x faster than calling the model once per window; peak RSS for 60 minutes
within 10% of 5 minutes. Issue 9: the band hourglass separates at least as fast as Open-Unmix on
the same song. Models have random weights: speed does not depend on what they learned.

Run: `python benchmarks/bench_prediction.py` (about 10 minutes on 2 cores; `--quick` skips the
60-minute song and the full-size network).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import soundfile

REPOSITORY = Path(__file__).resolve().parents[1]
CONFIGURATIONS = REPOSITORY / "configurations"
SMALL = CONFIGURATIONS / "cpu" / "small-hourglass.jsonc"
BAND = CONFIGURATIONS / "cpu" / "band-hourglass.jsonc"
FULL = CONFIGURATIONS / "splitstrument" / "guitar_full.jsonc"
# A deliberately tiny network for the memory runs: there the engine, not the network, is measured.
TINY_OPTIONS = {"stacks": 2, "initial_convolutions": {"filters": [4, 4, 4, 4, 4]}, "hg_module": {"filters": 4},
                "hg_module_end": {"filters": 4}}


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


def untrained_run(configuration: Path, folder: Path, options: dict | None = None) -> Path:
    """A run folder holding a randomly initialised model of `configuration`."""
    from unmix.core.config import load_configuration
    from unmix.core.runs import create_run_folder
    from unmix.core.training import build_model, describe_model
    from unmix.core.training_data import create_transform

    folder.mkdir(parents=True, exist_ok=True)
    child = folder / f"{configuration.stem}.jsonc"
    overrides = {"base": str(configuration.resolve()), "training": {"callbacks": {"tensorboard": {"enabled": False}}}}
    if options is not None:
        overrides["training"]["model"] = {"options": options}
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
    """Wall time and peak RSS (MB) of `unmix predict` in its own process."""
    unmix = Path(sys.executable).parent / "unmix"
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", str(unmix), "predict", "--run-folder", str(run),
                             "--song", str(song), "--output", str(output), *extra],
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return elapsed, {"peak_rss_mb": peak_kb / 1024}


class SeedPerWindowModel:
    """The original's inference loop: Keras `model.predict` called once per window (SEED-NOTES 6.2)."""

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
    from unmix.core.prediction import exporter_for, separate_file

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
    from unmix.core.interfaces import ExportOptions
    from unmix.core.prediction import exporter_for, separate_file
    from unmix.core.windows import song_frame_count, window_count

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


def open_unmix_real_time_factor(song: Path) -> float | None:
    """Open-Unmix's Separator (random weights, one target, 2 threads) on the same stereo audio."""
    try:
        import torch
    except ImportError:
        return None
    # openunmix imports torchaudio at package import, for file loading this benchmark never uses;
    # torchaudio has no build for torch 2.13, so an empty placeholder stands in for it.
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        from openunmix.model import OpenUnmix, Separator
    except ImportError:
        return None
    torch.set_num_threads(2)
    audio, rate = soundfile.read(song, dtype="float32", always_2d=True)
    umx = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487).eval()
    separator = Separator({"vocals": umx}, niter=0, residual=False, n_fft=4096, n_hop=1024, nb_channels=2,
                          sample_rate=rate).eval()
    mixture = torch.from_numpy(audio.T.copy())[None]
    with torch.no_grad():
        separator(mixture[..., :rate])
        start = time.perf_counter()
        separator(mixture)
        elapsed = time.perf_counter() - start
    return audio.shape[0] / rate / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 60-minute song and the full-size network")
    quick = parser.parse_args().quick
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="unmix-bench-") as temporary:
        folder = Path(temporary)
        song = write_song(folder / "three-minutes.mp3", 180.0)
        small = untrained_run(SMALL, folder / "small")
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

        from unmix.core import api

        band_seconds, band_result = timed_separation(api.create_engine(untrained_run(BAND, folder / "band")), song,
                                                     folder)
        band_rtf = band_result.seconds / band_seconds
        print(f"predict_rtf_band {band_rtf:.1f}x real time (band hourglass engine, same song, in process)")
        umx = open_unmix_real_time_factor(song.with_suffix(".mp3"))
        small_rtf = numbers["audio_seconds"] / numbers["engine_seconds"]
        if umx is None:
            print("open_unmix_rtf unavailable (pip install openunmix --no-deps to compare)")
        else:
            verdict = "ok" if band_rtf >= umx else "MISSED"
            print(f"open_unmix_rtf {umx:.1f}x real time (UMX, random weights, n_fft 4096); band hourglass "
                  f"{band_rtf:.1f}x (ratio {band_rtf / umx:.2f}, target >= 1: {verdict}); "
                  f"small hourglass {small_rtf:.1f}x (ratio {small_rtf / umx:.2f})")

        if quick:
            return
        excerpt = write_song(folder / "twenty-seconds.mp3", 20.0)
        full = untrained_run(FULL, folder / "full")
        elapsed, _ = timed_cli_predict(full, excerpt, folder / "out-full")
        print(f"predict_rtf_guitar_full {20.0 / elapsed:.3f}x real time (splitstrument network, 20 s stereo "
              f"44.1 kHz mp3, whole command {elapsed:.1f} s)")

        tiny = untrained_run(SMALL, folder / "tiny", TINY_OPTIONS)
        peaks = {}
        for minutes in (5, 60):
            long_song = write_song(folder / f"{minutes}-minutes.wav", minutes * 60.0)
            elapsed, measured = timed_cli_predict(tiny, long_song, folder / f"out-{minutes}")
            peaks[minutes] = measured["peak_rss_mb"]
            long_song.unlink()
            print(f"peak_rss_{minutes}_minutes {peaks[minutes]:.0f} MB ({elapsed:.0f} s, tiny network)")
        ratio = peaks[60] / peaks[5]
        print(f"peak_rss_ratio_60_to_5 {ratio:.3f} (target <= 1.10: {'ok' if ratio <= 1.10 else 'MISSED'})")


if __name__ == "__main__":
    main()
