"""A catalogue separated in one process (`unmix predict --songs`) against `unmix catalogue` on a local Ray.

The same folder of songs (stereo 44.1 kHz wav copies of one music-like song) is separated three
times, each as the whole command in its own process, with one thread per worker:
- `unmix predict --model M --songs DIR` (OMP_NUM_THREADS=1): one process, one song after another;
- `unmix catalogue DIR --model M --ray local --workers 1`: the same work through Ray, so the ratio of
  the two wall times is Ray's overhead at one worker (start-up, shipping songs, publishing; goal:
  within 10% of in-process);
- the same with `--workers 2`: songs per second with two workers on this machine.
The model is the band hourglass (configurations/cpu/band-hourglass.jsonc, random weights: speed does
not depend on what a model learned), exported to ONNX so that workers run onnxruntime alone, as a
cluster's workers would.

Run: `python benchmarks/bench_catalogue.py [--songs 24] [--seconds 60]` (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from bench_prediction import BAND, untrained_run, write_song  # noqa: E402
from machine import describe_cpu  # noqa: E402


def song_folder(folder: Path, songs: int, seconds: float) -> Path:
    """`songs` hard links of one written song: the same work per song, written once."""
    folder.mkdir(parents=True)
    first = write_song(folder / "song000.wav", seconds)
    for index in range(1, songs):
        os.link(first, folder / f"song{index:03d}.wav")
    return folder


def timed(command: list[str]) -> float:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    from unmix.onnx.export import export_run

    unmix = str(Path(sys.executable).parent / "unmix")
    print(f"CPU: {describe_cpu()}")
    with tempfile.TemporaryDirectory(prefix="unmix-bench-catalogue-") as temporary:
        folder = Path(temporary)
        model = export_run(untrained_run(BAND, folder / "runs", backend="torch")).path
        songs = song_folder(folder / "songs", arguments.songs, arguments.seconds)
        audio_hours = arguments.songs * arguments.seconds / 3600
        print(f"catalogue: {arguments.songs} songs of {arguments.seconds:.0f} s (stereo 44.1 kHz wav), "
              f"band hourglass exported to ONNX, 1 thread per worker")
        rows = [("unmix predict --songs (one process)",
                 timed([unmix, "predict", "--model", str(model), "--songs", str(songs), "--output",
                        str(folder / "predicted")]))]
        for workers in (1, 2):
            rows.append((f"unmix catalogue --ray local --workers {workers}",
                         timed([unmix, "catalogue", str(songs), "--model", str(model), "--output",
                                str(folder / f"catalogue-{workers}"), "--ray", "local", "--workers", str(workers)])))
    print(f"{'command':<42} {'wall s':>8} {'songs/s':>8} {'audio-h/h':>10}")
    for name, seconds in rows:
        print(f"{name:<42} {seconds:8.1f} {arguments.songs / seconds:8.3f} {audio_hours * 3600 / seconds:10.1f}")
    in_process, one_worker, two_workers = (seconds for _, seconds in rows)
    print(f"Ray overhead at one worker: {one_worker / in_process:.3f} x in-process wall time (goal: at most 1.10)")
    print(f"two workers against one: {one_worker / two_workers:.2f} x the songs per second")


if __name__ == "__main__":
    main()
