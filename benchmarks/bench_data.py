"""Training-data throughput and memory: windows per second, and peak RSS for 10 versus 100 songs.

Targets (issue 3), on the 2-core reference machine:
- at least 300 training windows per second from a 20-song cache (22050 Hz, mono, fft 1536,
  windows of 64 frames, batches of 8, the production transform), with the default worker threads;
- the peak resident memory of a fresh process reading 200 batches from 100 songs within 10% of
  the same from 10 songs; measured with epoch.shuffle on (the 100-song run then really visits all
  100 songs) and off (the shipped configurations' order).

The songs are 3 minutes of noise per stem, written as float32 .npy files in the training-data
cache's layout and opened memory-mapped through `unmix.core.data.cache.CachedSong` (or an equivalent
loader when the cache module is not installed). For comparison it also measures 0, 1 and 3 worker
threads, and 2 worker processes (fork, batches pickled back), which is why the batch source uses
threads, and how long a consumer with a fixed model step (a sleep, as a GPU step is for the CPU)
waits for its batches. Run: `python benchmarks/bench_data.py` (about a minute; needs ~3.5 GB of temporary disk).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import numpy as np

from unmix.core.config.schema import Collection, Configuration, Epoch, Training
from unmix.core.data.batches import BatchSource, default_workers
from unmix.core.data.tracks import SongAudio
from unmix.core.data.transforms import TrainWindowPredictMask

SAMPLE_RATE = 22050
SECONDS = 180
THROUGHPUT_SONGS = 20
RSS_SONGS = (10, 100)
RSS_BATCHES = 200
TARGET_WINDOWS_PER_SECOND = 300
TARGET_RSS_RATIO = 1.10

try:
    from unmix.core.data.cache import REST_FILE, TARGET_FILE, CachedSong
except ImportError:  # the cache module is optional for this benchmark
    CachedSong = None
    TARGET_FILE, REST_FILE = "target.npy", "rest.npy"


@attrs.frozen
class NpySong:
    """Stand-in for the cache's CachedSong: two .npy stems opened memory-mapped."""

    name: str
    folder: Path
    frames: int
    channels: int = 1
    sample_rate: int = SAMPLE_RATE

    def load(self) -> SongAudio:
        return SongAudio(self.name, "bench", self.sample_rate, np.load(self.folder / TARGET_FILE, mmap_mode="r"),
                         np.load(self.folder / REST_FILE, mmap_mode="r"))


def write_songs(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    samples = SAMPLE_RATE * SECONDS
    envelope = (0.6 + 0.4 * np.sin(np.linspace(0, 40 * np.pi, samples, dtype=np.float32))).astype(np.float32)
    for index in range(count):
        song_folder = folder / f"song{index:03d}"
        song_folder.mkdir()
        # Amplitude-modulated noise: every window differs, as real songs do.
        target = 0.3 * envelope * rng.standard_normal(samples, dtype=np.float32)
        rest = 0.2 * rng.standard_normal(samples, dtype=np.float32)
        np.save(song_folder / TARGET_FILE, target[np.newaxis])
        np.save(song_folder / REST_FILE, rest[np.newaxis])


def songs(folder: Path, count: int) -> list:
    frames = SAMPLE_RATE * SECONDS
    found = []
    for index in range(count):
        song_folder = folder / f"song{index:03d}"
        if CachedSong is not None:
            found.append(CachedSong(name=song_folder.name, collection="bench", folder=song_folder,
                                    sample_rate=SAMPLE_RATE, channels=1, frames=frames))
        else:
            found.append(NpySong(song_folder.name, song_folder, frames))
    return found


def configuration(shuffle_songs: bool = False) -> Configuration:
    return Configuration(
        collection=Collection(sample_rate=SAMPLE_RATE, stereo=False),
        training=Training(batch_size=8, epoch=Epoch(shuffle=shuffle_songs)),
    )


def thread_throughput(folder: Path, workers: int | None) -> tuple[float, int]:
    source = BatchSource(songs(folder, THROUGHPUT_SONGS), TrainWindowPredictMask(), configuration(), workers=workers)
    with source:
        windows = 0
        start = time.perf_counter()
        for inputs, _targets in source.epoch(0):
            windows += len(inputs)
        return windows / (time.perf_counter() - start), source.workers


def consumer_wait(folder: Path, workers: int | None, model_step_seconds: float, batches: int = 150) -> float:
    """Share of the time a consumer that takes `model_step_seconds` per batch spends waiting for data.

    The model step is a sleep, as a GPU step is for the CPU: it leaves the cores to the workers.
    """
    source = BatchSource(songs(folder, THROUGHPUT_SONGS), TrainWindowPredictMask(), configuration(), workers=workers)
    waited = 0.0
    with source:
        iterator = source.epoch(0)
        start = time.perf_counter()
        for _ in range(batches):
            asked = time.perf_counter()
            next(iterator)
            waited += time.perf_counter() - asked
            time.sleep(model_step_seconds)
        total = time.perf_counter() - start
        iterator.close()
    return waited / total


_PROCESS_SOURCE: BatchSource | None = None


def _process_batch(index: int) -> tuple[np.ndarray, np.ndarray]:
    assert _PROCESS_SOURCE is not None
    return _PROCESS_SOURCE.batch(0, index)


def process_throughput(folder: Path, processes: int) -> float:
    """The alternative design: worker processes that pickle each batch back to the consumer."""
    global _PROCESS_SOURCE
    _PROCESS_SOURCE = BatchSource(songs(folder, THROUGHPUT_SONGS), TrainWindowPredictMask(), configuration(),
                                  workers=0)
    windows = 0
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for inputs, _targets in pool.imap(_process_batch, range(len(_PROCESS_SOURCE)), chunksize=1):
            windows += len(inputs)
    elapsed = time.perf_counter() - start
    _PROCESS_SOURCE = None
    return windows / elapsed


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    Linux's VmHWM belongs to the current program image; getrusage's ru_maxrss also carries the
    peak of the parent that forked this process before exec, so it would report the benchmark
    driver's memory rather than this case's. ru_maxrss is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_case(folder: Path, count: int, batches: int, shuffle_songs: bool) -> dict[str, float]:
    """Runs in a fresh process: peak RSS while reading `batches` batches from `count` songs."""
    baseline = peak_rss_mb()
    source = BatchSource(songs(folder, count), TrainWindowPredictMask(), configuration(shuffle_songs=shuffle_songs))
    windows = 0
    start = time.perf_counter()
    with source:
        for number, (inputs, _targets) in enumerate(source.epoch(0)):
            windows += len(inputs)
            if number + 1 == batches:
                break
    elapsed = time.perf_counter() - start
    peak = peak_rss_mb()
    return {"peak_mb": peak, "baseline_mb": baseline, "windows": windows, "windows_per_second": windows / elapsed}


def run_rss_case(folder: Path, count: int, shuffle_songs: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--rss-case", str(count), "--folder", str(folder)]
    if shuffle_songs:
        command.append("--shuffle-songs")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    print(f"bench_data: {THROUGHPUT_SONGS}-song throughput and {RSS_SONGS[0]} vs {RSS_SONGS[1]}-song peak RSS; "
          f"{SECONDS} s noise songs at {SAMPLE_RATE} Hz mono, fft 1536, hop 384, size 64, batch 8, "
          f"loader {'CachedSong' if CachedSong is not None else 'NpySong'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="unmix-bench-data-") as temporary:
        folder = Path(temporary)
        start = time.perf_counter()
        write_songs(folder, max(RSS_SONGS))
        print(f"data_songs_written {max(RSS_SONGS)} in {time.perf_counter() - start:.1f} s", flush=True)

        # Processes first: forking a process that already ran worker threads is best avoided.
        by_design = {"processes2": process_throughput(folder, 2)}
        for workers in (0, 1, 3):
            by_design[f"threads{workers}"] = thread_throughput(folder, workers)[0]
        default_rate, default_workers_used = thread_throughput(folder, None)
        by_design[f"threads{default_workers_used}"] = default_rate
        print(f"data_windows_per_second {default_rate:.1f} ({THROUGHPUT_SONGS} songs, default {default_workers_used} "
              f"worker threads of {default_workers()} cores; target >= {TARGET_WINDOWS_PER_SECOND}: "
              f"{verdict(default_rate >= TARGET_WINDOWS_PER_SECOND)}; ratio to target "
              f"{default_rate / TARGET_WINDOWS_PER_SECOND:.2f})")
        shown = ", ".join(f"{name} {rate:.1f}" for name, rate in sorted(by_design.items()))
        print(f"data_windows_per_second_by_design {shown} (one epoch each: threads0 = in the consumer's thread, "
              f"processes2 = fork pool pickling batches back)")

        step = 8 * default_workers_used / default_rate  # a model asking for what the workers can just supply
        waits = {workers: consumer_wait(folder, workers, step) for workers in (None, 0)}
        print(f"data_consumer_wait_share {waits[None]:.3f} with {default_workers_used} worker threads, "
              f"{waits[0]:.3f} without (model step {1000 * step:.1f} ms per batch of 8, slept)")

        # epoch.shuffle on is the hard case: the 100-song run opens a different song for nearly
        # every window. Off (the shipped configurations), songs are read one after another.
        for shuffle_songs in (True, False):
            order = "shuffled" if shuffle_songs else "song_order"
            cases = {count: run_rss_case(folder, count, shuffle_songs) for count in RSS_SONGS}
            small, large = (cases[count] for count in RSS_SONGS)
            ratio = large["peak_mb"] / small["peak_mb"]
            for count, case in cases.items():
                print(f"data_peak_rss_mb_{order}_{count}_songs {case['peak_mb']:.1f} (after imports "
                      f"{case['baseline_mb']:.1f}; {case['windows']} windows in {RSS_BATCHES} batches, "
                      f"epoch.shuffle {'on' if shuffle_songs else 'off'}, {case['windows_per_second']:.1f} windows/s)")
            print(f"data_peak_rss_ratio_{order}_{RSS_SONGS[1]}_to_{RSS_SONGS[0]} {ratio:.3f} "
                  f"(target <= {TARGET_RSS_RATIO:.2f}: {verdict(ratio <= TARGET_RSS_RATIO)})", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rss-case", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shuffle-songs", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.rss_case:
        print(json.dumps(rss_case(arguments.folder, arguments.rss_case, RSS_BATCHES, arguments.shuffle_songs)))
    else:
        main()
