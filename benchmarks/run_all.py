"""Run every benchmarks/bench_*.py in its own process and print what each reports.

Each benchmark is a standalone script (so it can also be run alone) that prints its numbers; a
fresh process per benchmark keeps one's imports and memory out of another's timings. Used by
`nox -s bench`; arguments narrow the run to benchmarks whose name contains one of them, e.g.
`python benchmarks/run_all.py data`. Exits non-zero when a benchmark crashed (a missed target is
printed, not an error: benchmarks measure, they do not assert).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
# Trains two models for half an hour each: run on its own by `nox -s bench-quality`.
SEPARATE = {"bench_quality.py"}


def main(filters: list[str]) -> int:
    scripts = sorted(script for script in BENCHMARKS.glob("bench_*.py") if script.name not in SEPARATE)
    if filters:
        scripts = [script for script in scripts if any(word in script.stem for word in filters)]
    if not scripts:
        print(f"no benchmark matches {filters}", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=BENCHMARKS.parent)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            failed.append(script.name)
            print(f"== {script.name} FAILED with exit code {result.returncode} ({elapsed:.1f} s)", flush=True)
        else:
            print(f"== {script.name} done ({elapsed:.1f} s)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
