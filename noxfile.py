"""Sessions: `nox -s tests`, `nox -s lint`, `nox -s bench`.

Every session installs the packages editable with constraints.txt, which pins torch so that no
session ever pulls an unpinned (multi-GB CUDA) build.
"""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PACKAGES = [
    "-e", "packages/unmix-core",
    "-e", "packages/unmix-cli",
    "-e", "packages/unmix-sources[demo]",
    "-e", "packages/unmix-tf[cpu]",
    "-e", "packages/unmix-torch",
]
CONSTRAINTS = ["-c", "constraints.txt"]


def install_unmix(session: nox.Session, *extra: str) -> None:
    session.install(*CONSTRAINTS, *PACKAGES, *extra)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    install_unmix(session, "pytest", "pytest-timeout")
    session.run("pytest", "tests", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    install_unmix(session)
    session.run("python", "benchmarks/run_all.py", *session.posargs)
