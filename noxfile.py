"""Sessions: `nox -s tests`, `nox -s lint`, `nox -s bench`.

Every session installs the packages editable with constraints.txt, which pins torch so that no
session ever pulls an unpinned (multi-GB CUDA) build.
"""

from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
DEMO = "demo"
# The demo writes stems; a listener wants the mixture of a test song to hear what unmix takes apart.
MIX_FIRST_TEST_SONG = """
import json, sys
from pathlib import Path
import soundfile
data, out = Path(sys.argv[1]), Path(sys.argv[2])
song = json.loads((data / "demo.json").read_text())["split"]["test"][0]
target, rate = soundfile.read(next((data / song).glob("guitar_*.wav")))
rest, _ = soundfile.read(next((data / song).glob("rest_*.wav")))
out.mkdir(parents=True, exist_ok=True)
soundfile.write(out / f"{song}.wav", target + rest, rate)
print(out / f"{song}.wav")
"""
nox.options.reuse_existing_virtualenvs = True

PACKAGES = [
    "-e", "packages/unmix-core",
    "-e", "packages/unmix-cli",
    "-e", "packages/unmix-sources[demo]",
    "-e", "packages/unmix-tf[cpu,onnx]",
    "-e", "packages/unmix-torch[onnx]",
    "-e", "packages/unmix-onnx[export]",
]
CONSTRAINTS = ["-c", "constraints.txt"]
# `unmix catalogue` on Ray: the tests and the benchmarks need it, the demo does not (Ray is a large install).
RAY = ["-e", "packages/unmix-ray"]
# `unmix serve`, and what its tests drive it with: starlette's test client (httpx2) and Selenium, which drives
# Debian's chromium through /usr/bin/chromedriver (.ci/run installs both from apt).
SERVE = ["-e", "packages/unmix-serve", "httpx2>=2.0", "selenium>=4.11"]


def install_unmix(session: nox.Session, *extra: str) -> None:
    session.install(*CONSTRAINTS, *PACKAGES, *extra)


def run_folders(working_directory: str) -> set[Path]:
    runs = Path(working_directory) / "runs"
    return set(runs.iterdir()) if runs.is_dir() else set()


def the_new_run_folder(session: nox.Session, earlier_runs: set[Path]) -> str:
    """The run folder `unmix train` just made: the one that was not there before (earlier demos leave theirs)."""
    new_runs = run_folders(DEMO) - earlier_runs
    if len(new_runs) != 1:
        session.error(f"expected one new run folder in {DEMO}/runs after training, found {sorted(map(str, new_runs))}")
    return str(new_runs.pop())


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """Make the demo songs, train the quickstart model, separate a test song and evaluate."""
    install_unmix(session)
    data = f"{DEMO}/data"
    environment = {"UNMIX_COLLECTION_DIR": data, "TF_CPP_MIN_LOG_LEVEL": "2"}
    session.run("unmix", "datasets", "demo", data, "--force", env=environment)
    earlier_runs = run_folders(DEMO)
    # Not silent: training takes minutes, and its progress bar and per-epoch lines are what shows it is working.
    session.run("unmix", "train", "configurations/quickstart.jsonc", "--workingdir", DEMO, env=environment)
    run = the_new_run_folder(session, earlier_runs)
    session.log(f"run folder: {run}")
    song = session.run("python", "-c", MIX_FIRST_TEST_SONG, data, f"{DEMO}/songs", silent=True).strip()
    # --overwrite: a second `nox -s demo` replaces the stems of the first.
    session.run("unmix", "predict", "--run-folder", run, "--song", song, "--output", f"{DEMO}/separated",
                "--overwrite", env=environment)
    session.run("unmix", "evaluate", "--run-folder", run, "--collection", data, "--jobs", "2", env=environment)
    session.log(f"listen: {DEMO}/separated/ (the separated test song); reports: {run}/evaluation.txt, plots/")


# What tests/torch/test_msst_import.py compares imported MSST checkpoints with: lucidrains' BS-RoFormer at the
# release whose weight names are MSST's, with the rotary embedding and mel filterbank (librosa) its numbers come from.
MSST_REFERENCE = ["bs-roformer==0.3.10", "rotary-embedding-torch==0.9.1", "librosa==0.11.0"]


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite; `nox -s tests -- -m "not slow"` is the fast subset (about two minutes)."""
    install_unmix(session, *RAY, *SERVE, "pytest", "pytest-timeout", *MSST_REFERENCE)
    # The slowest tests are listed at the end, so what makes the suite long stays visible.
    session.run("pytest", "--durations=25", "tests", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


# Open-Unmix, the model the benchmarks compare against; --no-deps because it asks for torchaudio, which has no
# build for the pinned torch and which the benchmarks do not need.
OPEN_UNMIX = "openunmix==1.3.0"


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    install_unmix(session, *RAY)
    session.install("--no-deps", OPEN_UNMIX)
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(name="bench-quality", python="3.11")
def bench_quality(session: nox.Session) -> None:
    """Train an unmix configuration and Open-Unmix for the same budget and score both (an hour by default)."""
    install_unmix(session)
    session.install("--no-deps", OPEN_UNMIX)
    session.run("python", "benchmarks/bench_quality.py", *session.posargs)
