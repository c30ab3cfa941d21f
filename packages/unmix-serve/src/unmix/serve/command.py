"""`unmix serve`: the web app on this machine, until Ctrl-C.

The port is bound here, before uvicorn starts, so a port in use is one line that says what to do
(uvicorn would log it and exit on its own terms), and `--port 0` can pick a free port and still
print the address it serves at.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path

import click

from unmix.core.errors import UnmixError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@click.command("serve")
@click.option("--runs", "runs_folder", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="The folder whose run folders the app offers and shows (`unmix train` writes them to "
                   "<workingdir>/runs).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. The app has no login: anyone who can reach the address can use it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="The port to listen on; 0 picks a free one.")
@click.option("--jobs", "jobs_folder", type=click.Path(path_type=Path), default=Path("unmix-serve-jobs"),
              show_default=True, help="Where separation jobs keep their uploads and stems (one folder per job).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=200.0, show_default=True,
              help="The largest upload accepted, in MB (10^6 bytes).")
def serve_command(runs_folder: Path, host: str, port: int, jobs_folder: Path, max_upload_mb: float) -> None:
    """Separate songs in the browser and watch runs train: a local web app.

    Pages: / (separate a song with a run and listen to the stems), /runs (loss curves, evaluations,
    plots, trainings in progress), /runs/compare?a=RUN&b=RUN. The JSON API under /api is described in
    docs/serve.md.
    """
    import uvicorn

    from unmix.serve.app import ServeSettings, create_app

    if not runs_folder.is_dir():
        what = "is a file" if runs_folder.exists() else "does not exist"
        raise UnmixError(f"runs folder '{runs_folder}' {what}; give --runs the folder that holds your run folders "
                         "(`unmix train` writes them to <workingdir>/runs)")
    try:
        jobs_folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UnmixError(f"cannot create the jobs folder '{jobs_folder}' ({error.strerror}); choose another "
                         "--jobs") from None
    listener = _bind(host, port)
    loopback = _is_loopback(host)
    settings = ServeSettings(runs=runs_folder, jobs=jobs_folder, max_upload_bytes=int(max_upload_mb * 1e6),
                             hosts=LOOPBACK_NAMES | {host} if loopback else None)
    bound_port = listener.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"unmix serve: http://{shown_host}:{bound_port}/ (runs: {runs_folder}, jobs: {jobs_folder}); "
               "Ctrl-C stops it")
    if not loopback:
        click.echo(f"unmix: warning: listening on {host}, beyond this machine; the app has no login, so anyone "
                   "who reaches the address can separate songs and read the runs", err=True)
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket for host:port, or one line saying why there cannot be one."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror:
        raise UnmixError(f"--host '{host}' is not an address of this machine; use 127.0.0.1 (this machine only) "
                         "or 0.0.0.0 (every network)") from None
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise UnmixError(f"port {port} on {host} is already in use (another `unmix serve`?); stop that server "
                             "or choose another --port") from None
        if error.errno == errno.EACCES:
            raise UnmixError(f"no permission to listen on port {port}; ports below 1024 need root: choose "
                             "another --port, such as 8000") from None
        raise UnmixError(f"cannot listen on {host}:{port} ({error.strerror}); check --host and --port") from None
    return listener


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
