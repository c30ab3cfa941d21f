"""What stands between a request and the file system, and what a response may say.

Every name that comes from a request (a run, a job, a file, a plot) is one plain path component,
resolved below the folder it belongs to and refused unless the result still lies inside it: `..`,
absolute paths, separators and symlinks that lead out never reach `open`. Error responses carry one
line for the person at the browser, with the server's own folders shown by their option names, and
never a traceback: those go to the server's log.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LONGEST_NAME = 255


class RequestError(Exception):
    """A request the server refuses: the HTTP status and the one line the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def checked_name(name: str, what: str) -> str:
    """`name` if it is one plain file or folder name, else a 400 that says why.

    Hidden names (a leading dot) are refused too: unmix writes none that a page needs, and they
    include `..` in every spelling that survives URL decoding.
    """
    shown = name if len(name) <= 80 else name[:77] + "..."
    if not name or len(name) > _LONGEST_NAME or name.startswith(".") or any(c in name for c in "/\\\x00"):
        raise RequestError(400, f"{what} '{shown}' is not a plain name (no '/', '\\', '..' or leading '.'); "
                                f"pick a {what} from the list")
    return name


def inside(root: Path, *names: str, what: str) -> Path:
    """`root/names...` resolved, symlinks followed, and refused (404) unless it lies inside `root`.

    The names are checked with `checked_name` first (400), so only a symlink can lead out here;
    that is answered as if nothing were there, which is what the page can act on.
    """
    for name in names:
        checked_name(name, what)
    base = root.resolve()
    path = base.joinpath(*names).resolve()
    if path != base and base not in path.parents:
        raise RequestError(404, f"no {what} '{names[-1]}' here")
    return path


def without_server_paths(message: str, folders: Mapping[str, Path]) -> str:
    """`message` on one line, with each folder's absolute path replaced by its label (`--runs`, ...):
    core's errors name files by their full path, which says nothing to the page and more than it
    needs about the server."""
    line = " ".join(message.split())
    for label, folder in sorted(folders.items(), key=lambda item: -len(str(item[1].resolve()))):
        line = line.replace(str(folder.resolve()), label)
        if not folder.is_absolute():  # as given on the command line, only where a quoted path starts with it
            line = line.replace(f"'{folder}/", f"'{label}/").replace(f"'{folder}'", f"'{label}'")
    return line


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over `max_bytes` with a 413 that says the limit and the option.

    A declared Content-Length is refused before anything is read; a body without one (chunked) is
    counted as it arrives and refused at the first byte over the limit, so an upload never fills
    the disk beyond the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        megabytes = self.max_bytes / 1e6
        message = (f"the upload is larger than this server's limit of {megabytes:g} MB; send a shorter or "
                   "compressed file (mp3, ogg, flac), or restart `unmix serve` with a larger --max-upload-mb")
        await JSONResponse({"error": message}, status_code=413)(scope, receive, send)


class SameSite:
    """Refuse what a web page on another site could make the browser send here.

    A page elsewhere can post a form to 127.0.0.1 without asking (no CORS preflight for form posts),
    and can point its own host name at 127.0.0.1 (DNS rebinding) to read the answers. So a request
    that changes something must come from this server's own pages (its Origin, when sent, names
    the Host it was sent to), and with `hosts`, the Host header must be one of those names.
    """

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None = None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", ())}
        host = headers.get("host", "")
        if self.hosts is not None and urlsplit(f"//{host}").hostname not in self.hosts:
            message = (f"this server answers to {', '.join(sorted(self.hosts))} only; open it by the address "
                       "`unmix serve` printed")
            await JSONResponse({"error": message}, status_code=400)(scope, receive, send)
            return
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD") and origin is not None and urlsplit(origin).netloc != host:
            message = "requests from other sites' pages are refused; use this server's own page"
            await JSONResponse({"error": message}, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Pages load only this server's own scripts, styles, images and audio, and no file is sniffed as
    another type: a song or plot name can never become markup that runs."""

    POLICY = ("default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff"),
                                      (b"content-security-policy", self.POLICY.encode())]
            await send(message)

        await self.app(scope, receive, with_headers)
