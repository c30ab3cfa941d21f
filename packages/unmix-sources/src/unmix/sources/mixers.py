"""The `ratio` mixer: several datasets mixed by ratio (`collection.folders: [{path, ratio}]`).

How it counts, for datasets i with ratio r_i (R = sum of the ratios, share s_i = r_i / R):

1. Each dataset is put in the seed's md5 order and keeps its own test songs (its last
   `test_data_count`), exactly as a single-folder split would, so the test set does not move
   when ratios or song_limit change. The songs left are its pool, of n_i songs.
2. The total the pools can give while keeping the ratios is `min_i(n_i / s_i)`: the dataset that
   runs out first decides. song_limit then caps it (> 1: at most that many songs; <= 1: that
   fraction of the total; 0: no cap).
3. Dataset i contributes the first `int(s_i * total)` songs of its pool, and those are split into
   validation (first `int(count * validation_ratio)`) and training separately per dataset; the
   lists are concatenated in the order of `collection.folders`.

Difference from the seed (docs/original-system.md §9.11): splitstrument computed the total from the
dataset with the fewest songs (`R / r_smallest * n_smallest`), so a big dataset with a large
ratio could be asked for more songs than it has (3:1 with 10 and 8 songs asked 24 of the first
and silently got 10, i.e. 10 + 8 instead of 3:1). Here the limit is the minimum over all datasets
of `n_i / s_i` (10 + 3 in that example), no dataset is asked for more than it holds, and every
dataset that limits the mix is named in `Split.messages` (also logged as a warning). A ratio of 0
leaves a dataset out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import attrs

from unmix.core.data.collection import DatasetShare, Split, order_songs, split_ordered
from unmix.core.errors import ConfigurationError

__all__ = ["RatioMixer"]

log = logging.getLogger("unmix.mixers")
# Float slack so that e.g. 0.75 * 13.333... counts as 10 songs, not 9.
_EPSILON = 1e-9


@attrs.frozen
class RatioMixer:
    """Mixes datasets by ratio, limited by the dataset that runs out first (see the module docs)."""

    name: str = "ratio"

    def mix(
        self,
        shares: Sequence[DatasetShare],
        *,
        song_limit: float = 0,
        validation_ratio: float = 0.2,
        test_data_count: int = 0,
    ) -> Split:
        if not shares:
            raise ConfigurationError("collection.folders is empty: list at least one {\"path\": ..., \"ratio\": ...}")
        for share in shares:
            if share.ratio < 0 or not math.isfinite(share.ratio):
                raise ConfigurationError(f"collection.folders: the ratio of '{share.label}' is {share.ratio}; "
                                         "use a number >= 0")
        ratio_sum = sum(share.ratio for share in shares)
        if ratio_sum <= 0:
            raise ConfigurationError("collection.folders: every ratio is 0; give at least one dataset a ratio > 0")
        if song_limit < 0:
            raise ConfigurationError(f"collection.song_limit is {song_limit}; use 0 (all), <= 1 (a fraction) "
                                     "or a song count")

        messages: list[str] = []
        ordered = [order_songs(share.items) for share in shares]
        test_counts = [min(int(test_data_count), len(songs)) for songs in ordered]
        pools = [len(songs) - test for songs, test in zip(ordered, test_counts, strict=True)]
        fractions = [share.ratio / ratio_sum for share in shares]

        # What each dataset allows in total while the ratios hold; the smallest wins.
        allowed = [pool / fraction if fraction > 0 else math.inf
                   for pool, fraction in zip(pools, fractions, strict=True)]
        available = min(allowed)
        total = available
        if song_limit > 1:
            total = min(available, float(song_limit))
        elif song_limit > 0:
            total = available * song_limit
        counts = [int(fraction * total + _EPSILON) if fraction > 0 else 0 for fraction in fractions]
        mixed = sum(counts)

        for index, share in enumerate(shares):
            fraction = fractions[index]
            if fraction == 0:
                continue
            if song_limit > 1:
                asked = math.ceil(fraction * song_limit - _EPSILON)
                if pools[index] < asked:
                    messages.append(
                        f"dataset '{share.label}' has {pools[index]} songs (besides its {test_counts[index]} test "
                        f"songs), fewer than the {asked} its ratio {share.ratio:g} asks of song_limit "
                        f"{song_limit:g}; the mix is cut to {mixed} songs so that the ratios hold"
                    )
            elif song_limit == 0 and allowed[index] == available:
                others = [f"'{shares[i].label}' gives {counts[i]} of {pools[i]}" for i in range(len(shares))
                          if i != index and counts[i] < pools[i] and fractions[i] > 0]
                if others:
                    messages.append(
                        f"dataset '{share.label}' has only {pools[index]} songs for its ratio {share.ratio:g}, "
                        f"which limits the mix to {mixed} songs: " + ", ".join(others)
                    )
        for message in messages:
            log.warning(message)

        training: list[object] = []
        validation: list[object] = []
        test: list[object] = []
        for songs, test_count, count in zip(ordered, test_counts, counts, strict=True):
            part = split_ordered(songs, test_count=test_count, keep=count, validation_ratio=validation_ratio)
            training.extend(part.training)
            validation.extend(part.validation)
            test.extend(part.test)
        return Split(training=training, validation=validation, test=test, messages=messages)
