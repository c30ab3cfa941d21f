"""Training-time augmentation of the stems, in the style of Open-Unmix and Demucs; off by default.

The seed always trained on each song's own mix (docs/original-system.md §4.5), so a network saw every
target/rest pairing exactly as recorded, epoch after epoch. With `augmentation.enabled` each
training excerpt is changed before its STFT, in the time domain where the changes are exact:

- gain: each stem is scaled by its own factor drawn uniformly from [gain_min, gain_max], so the
  balance between target and rest varies;
- channel swap (`channel_swap`, stereo only): each stem's left and right are exchanged with
  probability 1/2, independently;
- remix (`remix_probability`): the rest is replaced by the rest of another song, from a random
  offset, so targets are heard against accompaniments they were never recorded with;
- pitch (`pitch_semitones`): each stem is played back at its own speed, drawn so that its pitch
  moves by up to that many semitones either way (tape-style: tempo moves with it), so a few songs
  yield an instrument in many registers. The stems are resampled by linear interpolation when
  read (`read_excerpt_at_speed`); since target and rest change apart, this is for remix-heavy
  training, where the two are unrelated anyway.

Everything random is drawn into an `AugmentationPlan` first, from a generator the data pipeline
seeds per item, so a batch is the same whichever worker thread builds it, and tests can check a
plan without decoding audio. Validation and test data are never augmented (the batch source's
`augment=False`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import numpy as np

from unmix.core.errors import ConfigurationError

if TYPE_CHECKING:
    from unmix.core.config.schema import Configuration

__all__ = ["AugmentationPlan", "Augmenter"]


@attrs.frozen
class AugmentationPlan:
    """What to do to one excerpt. The defaults change nothing."""

    target_gain: float = 1.0
    rest_gain: float = 1.0
    swap_target: bool = False
    swap_rest: bool = False
    # Index of the song whose rest replaces this excerpt's rest, and the first sample to take.
    remix_song: int | None = None
    remix_offset: int = 0
    # Playback speed of each stem: 2 ** (semitones / 12); above 1 is higher and faster.
    target_speed: float = 1.0
    rest_speed: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self == AugmentationPlan()

    def apply(self, target: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gains and channel swaps applied to (channels, samples) stems; new arrays, inputs untouched.

        The remix is not done here: the caller reads the other song's rest (it owns the songs) and
        passes that as `rest`.
        """
        return _changed(target, self.target_gain, self.swap_target), _changed(rest, self.rest_gain, self.swap_rest)


def _changed(stem: np.ndarray, gain: float, swap: bool) -> np.ndarray:
    if swap:
        stem = stem[::-1]
    if gain != 1.0:
        return np.multiply(stem, np.float32(gain), dtype=np.float32)
    return np.array(stem, dtype=np.float32)


def _check_gains(instance: Augmenter, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise ConfigurationError(f"augmentation.{attribute.name} must be at least 0, got {value}")


@attrs.frozen
class Augmenter:
    """Draws augmentation plans; the fields are the `augmentation` configuration section."""

    enabled: bool = False
    gain_min: float = attrs.field(default=0.25, validator=_check_gains)
    gain_max: float = attrs.field(default=1.25, validator=_check_gains)
    channel_swap: bool = True
    remix_probability: float = 0.5
    pitch_semitones: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.gain_min > self.gain_max:
            raise ConfigurationError(
                f"augmentation.gain_min ({self.gain_min}) must not be larger than augmentation.gain_max "
                f"({self.gain_max})"
            )
        if not 0.0 <= self.remix_probability <= 1.0:
            raise ConfigurationError(
                f"augmentation.remix_probability must be between 0 and 1, got {self.remix_probability}"
            )
        if not 0.0 <= self.pitch_semitones <= 12.0:
            raise ConfigurationError(
                f"augmentation.pitch_semitones must be between 0 and 12, got {self.pitch_semitones}"
            )

    @classmethod
    def from_configuration(cls, configuration: Configuration) -> Augmenter:
        section = configuration.augmentation
        return cls(
            enabled=section.enabled,
            gain_min=section.gain_min,
            gain_max=section.gain_max,
            channel_swap=section.channel_swap,
            remix_probability=section.remix_probability,
            pitch_semitones=section.pitch_semitones,
        )

    def plan(
        self,
        rng: np.random.Generator,
        song_index: int,
        song_lengths: Sequence[int],
        excerpt_samples: int,
        channels: int,
    ) -> AugmentationPlan:
        """A plan for an excerpt of `excerpt_samples` samples of song `song_index`.

        `song_lengths` are the samples of every song the excerpt may be remixed with; the partner
        is any other song, uniformly, and the offset is uniform over the positions where the
        excerpt fits inside it (0 when the partner is shorter: the rest is zero padded).
        """
        if not self.enabled:
            return AugmentationPlan()
        target_gain, rest_gain = rng.uniform(self.gain_min, self.gain_max, size=2)
        swap_target = swap_rest = False
        if self.channel_swap and channels == 2:
            swap_target, swap_rest = (bool(swap) for swap in rng.random(2) < 0.5)
        remix_song = None
        remix_offset = 0
        song_count = len(song_lengths)
        if song_count > 1 and rng.random() < self.remix_probability:
            # Uniform over the other songs: draw from count - 1 and step over this song's index.
            remix_song = int(rng.integers(song_count - 1))
            if remix_song >= song_index:
                remix_song += 1
            room = int(song_lengths[remix_song]) - excerpt_samples
            remix_offset = int(rng.integers(room + 1)) if room > 0 else 0
        # Drawn last, and only when on, so that plans without it stay what they were.
        target_speed = rest_speed = 1.0
        if self.pitch_semitones:
            target_speed, rest_speed = 2.0 ** (rng.uniform(-self.pitch_semitones, self.pitch_semitones, size=2) / 12)
        return AugmentationPlan(
            target_gain=float(target_gain),
            rest_gain=float(rest_gain),
            swap_target=swap_target,
            swap_rest=swap_rest,
            remix_song=remix_song,
            remix_offset=remix_offset,
            target_speed=float(target_speed),
            rest_speed=float(rest_speed),
        )
