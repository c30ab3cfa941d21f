"""The one way unmix writes files: whole or not at all, no leftovers, a full disk as one line."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unmix.core.errors import UnmixError
from unmix.core.files import (
    TEMPORARY_MARK,
    AtomicFile,
    WriteError,
    atomic_path,
    remove_stale_temporaries,
    temporary_path,
    write_error,
    write_text_atomically,
)


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_finished_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    write_text_atomically(target, "new")
    assert target.read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state.json"]


def test_a_failing_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "last.npz"
    target.write_bytes(b"good checkpoint")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temporary:
        temporary.write_bytes(b"half of a new one")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"good checkpoint"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.npz"]


def test_the_temporary_name_is_hidden_beside_the_target_and_names_the_writer(tmp_path: Path) -> None:
    temporary = temporary_path(tmp_path / "song_vocals.wav")
    assert temporary.parent == tmp_path
    assert temporary.name.startswith(".song_vocals.wav.")
    assert f".{os.getpid()}." in temporary.name and temporary.name.endswith(TEMPORARY_MARK)
    keras = temporary_path(tmp_path / "best.keras", suffix=".keras")
    assert keras.name.endswith(f"{TEMPORARY_MARK}.keras")
    assert len(temporary_path(tmp_path / ("x" * 250)).name) < 255


def test_stale_temporaries_of_ended_processes_go_and_live_ones_stay(tmp_path: Path) -> None:
    stale = tmp_path / f".song_vocals.wav.{dead_pid()}.0123abcd{TEMPORARY_MARK}"
    stale_keras = tmp_path / f".best.keras.{dead_pid()}.0123abcd{TEMPORARY_MARK}.keras"
    live = tmp_path / f".song_rest.wav.{os.getppid()}.0123abcd{TEMPORARY_MARK}"
    mine = temporary_path(tmp_path / "song_mix.wav")
    foreign = tmp_path / ".notes.txt.123.tmp"
    for path in (stale, stale_keras, live, mine, foreign):
        path.write_bytes(b"x" * 1000)
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([stale, stale_keras])
    assert sorted(tmp_path.iterdir()) == sorted([live, mine, foreign])


def test_a_staged_folder_of_a_killed_process_goes_too(tmp_path: Path) -> None:
    """`unmix import msst` stages a whole run folder under a temporary name; kill -9 leaves it behind."""
    staged = tmp_path / f".imported-run.{dead_pid()}.0123abcd{TEMPORARY_MARK}"
    (staged / "weights").mkdir(parents=True)
    (staged / "weights" / "best.pt").write_bytes(b"x" * 1000)
    live = tmp_path / f".other-run.{os.getppid()}.0123abcd{TEMPORARY_MARK}"
    live.mkdir()
    assert remove_stale_temporaries(tmp_path) == [staged]
    assert sorted(tmp_path.iterdir()) == [live]


def test_a_new_writer_removes_what_a_killed_one_left(tmp_path: Path) -> None:
    stale = tmp_path / f".song_vocals.wav.{dead_pid()}.0123abcd{TEMPORARY_MARK}"
    stale.write_bytes(b"x" * 1000)
    file = AtomicFile(tmp_path / "song_vocals.wav")
    file.temporary.write_bytes(b"whole")
    file.commit()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["song_vocals.wav"]


def test_a_full_disk_is_a_user_error_naming_the_file_and_what_to_do(tmp_path: Path) -> None:
    target = tmp_path / "weights" / "last.pt"
    error = write_error(target, OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(error, UnmixError)
    assert str(error) == (f"cannot write '{target}': No space left on device; free some space on that disk, "
                          "then run the command again")
    resumable = error.then("resume with: unmix train --resume RUN")
    assert str(resumable).endswith("free some space on that disk, then resume with: unmix train --resume RUN")
    assert isinstance(write_error(target, OSError(errno.EROFS, "x")), WriteError)
    assert write_error(target, OSError(errno.ENOENT, "x")) is None


def test_a_disk_error_while_writing_becomes_a_write_error_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    with pytest.raises(WriteError, match="model.json"), atomic_path(target) as temporary:
        temporary.write_text("{")
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert list(tmp_path.iterdir()) == []
