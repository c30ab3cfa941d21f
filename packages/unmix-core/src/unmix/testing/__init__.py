"""unmix.testing: what a plugin's own tests need to check it against unmix for real.

```python
from unmix.testing import round_trip, tiny_configuration, write_tiny_collection

def test_my_model_trains_separates_and_evaluates(tmp_path):
    collection = write_tiny_collection(tmp_path / "songs")
    configuration = tiny_configuration(tmp_path, collection, backend="torch", model="my-model")
    result = round_trip(configuration, tmp_path)
    assert result.scores["si_sdr"] > -10
```

- `write_tiny_collection` writes a few seconds of songs a model can learn to separate;
- `tiny_configuration` writes a configuration that trains on them in seconds on a CPU;
- `round_trip` trains, separates a test song and evaluates the run through unmix's own code,
  asserting what every run must satisfy (finite losses, checkpoints, stems that add up to the mix);
- `check_model_builder`, `check_transform`, `check_source`, `check_dataset` and `check_exporter`
  drive one object of a plugin through its protocol the way core will.

Failures are AssertionErrors whose message says what was expected, so plain pytest reports them
well; nothing here imports pytest or a deep-learning framework. This module's names are public
and follow `unmix.core.HOOKS_VERSION` like the hooks do.
"""

from __future__ import annotations

from unmix.testing.checks import check_dataset, check_exporter, check_model_builder, check_source, check_transform
from unmix.testing.configuration import tiny_configuration
from unmix.testing.data import write_tiny_collection
from unmix.testing.round_trip import STEM_TOLERANCE, RoundTrip, round_trip

__all__ = [
    "STEM_TOLERANCE",
    "RoundTrip",
    "check_dataset",
    "check_exporter",
    "check_model_builder",
    "check_source",
    "check_transform",
    "round_trip",
    "tiny_configuration",
    "write_tiny_collection",
]
