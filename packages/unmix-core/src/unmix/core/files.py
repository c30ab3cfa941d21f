"""Writing files whole or not at all: write to a temporary name beside the target, then rename.

A reader (or a resumed run after a crash, Ctrl-C or SIGKILL) therefore sees either the old file
or the new one, never half of one. Every writer in unmix goes through `atomic_path` (or
`AtomicFile`, for writers that open and close in separate calls), so all of them share:

- one temporary name, `.<name>.<pid>.<token>.unmix.tmp`, hidden and recognisably unmix's. A
  process killed with SIGKILL cannot clean up after itself, so the next writer into the same
  folder removes the temporaries of processes that no longer exist (never those of live ones);
- fsync of the file before the rename and of the folder after it, so a power cut cannot leave
  the new name pointing at empty data or the rename forgotten;
- one message for a full disk, an exceeded quota or a read-only file system, naming the file:
  such an error is the user's to fix, not a bug, and must not end in a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from unmix.core.errors import UnmixError

TEMPORARY_MARK = ".unmix.tmp"
_TEMPORARY_NAME = re.compile(r"^\..*\.(?P<pid>\d+)\.[0-9a-f]{8}\.unmix\.tmp(\.[A-Za-z0-9]+)?$")
_LONGEST_NAME_PART = 100  # keeps the temporary name within the usual 255-byte limit

_REMEDIES = {  # errno: what the user can do
    errno.ENOSPC: "free some space on that disk",
    errno.EDQUOT: "free some space or ask for a larger quota",
    errno.EROFS: "make that file system writable or choose another folder",
    errno.EFBIG: "raise the file size limit (ulimit -f) or choose another folder",
}


class WriteError(UnmixError):
    """A file that could not be written because of the disk, not because of a bug."""

    def __init__(self, path: Path, problem: str, remedy: str, next_step: str = "run the command again") -> None:
        super().__init__(f"cannot write '{path}': {problem}; {remedy}, then {next_step}")
        self.path = Path(path)
        self.problem = problem
        self.remedy = remedy

    def then(self, next_step: str) -> WriteError:
        """The same error with a better next step, for a caller that knows one (resume a training)."""
        return WriteError(self.path, self.problem, self.remedy, next_step)


def write_error(path: Path, error: OSError) -> WriteError | None:
    """The one-line error for a full, over-quota or read-only disk; None for other OS errors (bugs)."""
    if error.errno not in _REMEDIES:
        return None
    return WriteError(path, os.strerror(error.errno), _REMEDIES[error.errno])


def raise_write_error(path: Path, error: OSError) -> NoReturn:
    """Re-raise `error` as a `WriteError` when the disk is the cause, unchanged otherwise."""
    converted = write_error(path, error)
    if converted is None:
        raise error
    raise converted from None


def temporary_path(path: Path, suffix: str = "") -> Path:
    """A unique hidden name beside `path` (same file system, so the final rename is atomic).

    `suffix` is appended for libraries that insist on an extension (Keras wants `.keras`).
    """
    path = Path(path)
    name = path.name[:_LONGEST_NAME_PART]
    return path.parent / f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TEMPORARY_MARK}{suffix}"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries (files, or folders staged whole) that killed unmix processes left in `folder`;
    those of live ones stay."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY_NAME.match(entry.name)
        if match is None or _process_exists(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OverflowError:
        return False
    return True


class AtomicFile:
    """A temporary file for `path` that `commit()` moves into place and `discard()` removes.

    For writers whose opening and closing happen in different calls (stem writers); code that
    writes within one block uses `atomic_path`.
    """

    def __init__(self, path: Path, suffix: str = "") -> None:
        self.path = Path(path)
        remove_stale_temporaries(self.path.parent)
        self.temporary = temporary_path(self.path, suffix)

    def commit(self) -> None:
        """Flush the temporary to disk, rename it onto the target, and make the rename durable."""
        try:
            _flush_to_disk(self.temporary)
            os.replace(self.temporary, self.path)
            _flush_folder(self.path.parent)
        except OSError as error:
            self.discard()
            raise_write_error(self.path, error)

    def discard(self) -> None:
        """Remove the temporary (idempotent): after a failure nothing half-written stays."""
        with contextlib.suppress(OSError):
            self.temporary.unlink()


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write `path` to; committed when the block ends normally.

    Any exception (Ctrl-C included) removes the temporary and leaves the previous `path`
    untouched; a full disk becomes a `WriteError` naming `path`.
    """
    file = AtomicFile(path, suffix)
    try:
        yield file.temporary
    except OSError as error:
        file.discard()
        raise_write_error(file.path, error)
    except BaseException:
        file.discard()
        raise
    file.commit()


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary_path)`, then move the result onto `path`."""
    with atomic_path(Path(path)) as temporary:
        write(temporary)


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json_atomically(path: Path, data: Any) -> None:
    write_text_atomically(path, json.dumps(data, indent=2) + "\n")


def _flush_to_disk(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _flush_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot fsync a folder, which is no error."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)
