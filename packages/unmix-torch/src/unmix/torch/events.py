"""TensorBoard event files for the epoch metrics, written without TensorFlow.

Core's tensorboard callback asks the backend to write them (`write_scalars`). PyTorch's own
`torch.utils.tensorboard` would do, but it imports TensorFlow whenever TensorFlow is installed
(as it is beside unmix-tf): seconds of start-up and a screenful of TensorFlow logs.
The event file is simple (TFRecord framing around `Event` protocol buffers), so this module
writes it with the `tensorboard` package's protobufs and record framing alone, into a plain
file opened for appending, which imports in a fraction of that time (benchmarks/README.md
has both timings and the commands). Without the `tensorboard` package (an optional
dependency: `pip install unmix-torch[tensorboard]`) it says so once and writes nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("unmix")


class EventLog:
    """One event file per folder and process; scalars are appended and flushed after every epoch."""

    def __init__(self, folder: Path) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = Event, Summary
        folder.mkdir(parents=True, exist_ok=True)
        # TensorBoard finds files by this name pattern; the suffix tells them from the Keras backend's.
        name = f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}.torch"
        self._file: BinaryIO = open(folder / name, "ab")  # noqa: SIM115 - kept open for the whole run
        self._records = RecordWriter(self._file)
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        summary = self._summary(value=[self._summary.Value(tag=name, simple_value=float(value))
                                       for name, value in values.items()])
        self._write(self._event(wall_time=time.time(), step=int(step), summary=summary))

    def close(self) -> None:
        self._file.close()

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())
        self._file.flush()


_missing_warned = False


def open_event_log(folder: Path) -> EventLog | None:
    global _missing_warned
    try:
        return EventLog(folder)
    except ImportError:
        if not _missing_warned:
            _missing_warned = True
            log.warning("training.callbacks.tensorboard is enabled but the tensorboard package is not installed: "
                        "pip install tensorboard (or unmix-torch[tensorboard]); no TensorBoard logs are written")
        return None
