"""The shared tiny hourglass helpers (tests/tiny_models.py), building torch models by default."""

from functools import partial

from tests import tiny_models
from tests.tiny_models import INPUT_SHAPE, NORM_OPTIONS, TINY_OPTIONS, build, half_gain_batches, ignore

__all__ = ["INPUT_SHAPE", "NORM_OPTIONS", "TINY_OPTIONS", "build", "half_gain_batches", "ignore", "tiny_settings"]

tiny_settings = partial(tiny_models.tiny_settings, backend="torch")
