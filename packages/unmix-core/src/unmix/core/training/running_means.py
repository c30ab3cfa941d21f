"""The epoch metrics every backend reports: batch-size weighted means of the per-batch values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import SupportsFloat

from unmix.core.errors import ModelError


class RunningMeans:
    """Batch-size weighted means of step results, like the numbers Keras' progress bar shows.

    It is fed plain numbers (anything `float()` takes, a 0-d tensor included), so both backends
    report an epoch the same way and this class knows no framework.
    """

    def __init__(self, count: int = 0, sums: Mapping[str, float] | None = None) -> None:
        """Start empty, or from totals already gathered (the sums of value times batch size, and the count)."""
        self._count = count
        self._sums: dict[str, float] = dict(sums or {})

    @property
    def count(self) -> int:
        """Examples seen so far."""
        return self._count

    def total(self, name: str) -> float:
        """The sum of `name`'s values times their batch sizes, what processes add up to combine their means."""
        return self._sums.get(name, 0.0)

    def add(self, measured: Mapping[str, SupportsFloat], count: int) -> None:
        """One step's values, measured on a batch of `count` examples."""
        self._count += count
        for name, value in measured.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value) * count

    def values(self) -> dict[str, float]:
        """The means so far, or nothing before the first example."""
        if not self._count:
            return {}
        return {name: total / self._count for name, total in self._sums.items()}

    def result(self, split: str) -> dict[str, float]:
        """The epoch's means; an epoch without a batch is the user's empty data, said in one line."""
        if not self._count:
            raise ModelError(f"no {split} batches: the {split} data is empty")
        return self.values()
