"""How long `unmix --help` takes to start, and whether it pulls in a deep-learning framework.

Target (issue 2): under 0.5 s on the 2-core reference machine, with neither TensorFlow nor
PyTorch imported. Run: `python benchmarks/bench_cli_startup.py`.
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.5
RUNS = 7


def unmix_command() -> list[str]:
    script = Path(sys.executable).parent / "unmix"
    return [str(script)] if script.exists() else [sys.executable, "-m", "unmix.cli"]


def time_help() -> float:
    start = time.perf_counter()
    subprocess.run([*unmix_command(), "--help"], check=True, capture_output=True)
    return time.perf_counter() - start


def heavy_modules() -> list[str]:
    probe = (
        "import sys\nfrom unmix.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "import json\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'torch', 'keras'})),"
        " file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(result.stderr.strip().splitlines()[-1])


def main() -> None:
    time_help()  # warm the file cache
    timings = [time_help() for _ in range(RUNS)]
    median = statistics.median(timings)
    verdict = "ok" if median < TARGET_SECONDS else "SLOW"
    print(f"cli_startup_seconds_median {median:.3f} (min {min(timings):.3f}, max {max(timings):.3f}, "
          f"{RUNS} runs; target < {TARGET_SECONDS}: {verdict}; ratio to target {median / TARGET_SECONDS:.2f})")
    print(f"cli_startup_frameworks_imported {heavy_modules()}")


if __name__ == "__main__":
    main()
