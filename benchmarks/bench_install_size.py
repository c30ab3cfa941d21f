"""Disk size of each install the README documents, in fresh virtual environments.

What someone who only wants to separate songs installs: unmix-onnx (onnxruntime) against a training
backend (TensorFlow's CPU build, PyTorch's CPU wheel). The install lines are README.md's, read
as tests/installs/test_fresh_installs.py reads them; sizes are the environment folders on disk,
pip's own ~20 MB included in each, so compare differences.

Run: `python benchmarks/bench_install_size.py` (a few minutes: it installs each line).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def install_lines() -> list[str]:
    section = (REPOSITORY / "README.md").read_text().split("\n## Packages\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.startswith("pip install ")]


def folder_megabytes(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink()) / 1e6


def main() -> None:
    print(f"{'install (after core, cli)':<60}{'MB on disk':>12}")
    for line in install_lines():
        packages = [word for word in shlex.split(line) if word.startswith(("packages/", "'packages/"))]
        label = " ".join(package.removeprefix("packages/") for package in packages[2:]) or "core, cli"
        with tempfile.TemporaryDirectory(prefix="unmix-install-size-") as temporary:
            venv = Path(temporary) / "venv"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", *shlex.split(line)[0:2], "-q", *shlex.split(line)[2:]],
                           cwd=REPOSITORY, check=True)
            print(f"{label:<60}{folder_megabytes(venv):>12.0f}", flush=True)


if __name__ == "__main__":
    main()
