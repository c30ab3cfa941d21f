"""From a configuration to the batches the training driver feeds the model.

The collection (one folder, or several mixed by ratio) is cached on first use (decoded and
resampled once, memory-mapped afterwards), split as the seed did, and each split becomes a
`BatchSource`. Validation batches are never augmented.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from unmix.core.config.loader import LoadedConfiguration
from unmix.core.config.schema import Configuration
from unmix.core.data.batches import BatchSource
from unmix.core.data.cache import collection_target, open_songs
from unmix.core.data.collection import split_collection
from unmix.core.data.transforms import Transform, create_transform
from unmix.core.errors import UnmixError

log = logging.getLogger("unmix")


@attrs.define
class TrainingData:
    training: BatchSource
    validation: BatchSource | None
    test_songs: tuple[Any, ...]
    transform: Transform
    input_shape: tuple[int, ...]

    def describe(self) -> str:
        validation_songs = len(self.validation.songs) if self.validation is not None else 0
        validation_batches = len(self.validation) if self.validation is not None else 0
        return (f"{len(self.training.songs)} training songs ({len(self.training)} batches), "
                f"{validation_songs} validation songs ({validation_batches} batches), "
                f"{len(self.test_songs)} test songs")


def collection_songs(settings: Configuration, folder: Path, target_is_explicit: bool = True) -> list:
    """The songs of one collection folder, cached at the configuration's rate and channels.

    `target_is_explicit` False: collection.target is only the shipped default, so the instrument the
    collection's file names designate is used instead (a guitar collection trains a guitar model).
    """
    collection = settings.collection
    if not folder.is_dir():
        raise UnmixError(f"collection folder '{folder}' does not exist; set collection.folder "
                         "(or UNMIX_COLLECTION_DIR) to a folder of song folders")
    return open_songs(folder, sample_rate=collection.sample_rate, channels=settings.channels,
                      target=collection.target if target_is_explicit else None, dataset=collection.dataset)


def with_collection_target(loaded: LoadedConfiguration) -> LoadedConfiguration:
    """`loaded` with collection.target set to the instrument the collection holds, unless the user chose one.

    The run folder's configuration then names the instrument it was trained on, so prediction and
    evaluation call the stem 'guitar' for a guitar collection, not the shipped default 'vocals'.
    """
    collection = loaded.settings.collection
    if target_is_explicit(loaded):
        return loaded
    folders = [Path(share.path) for share in collection.folders] or [Path(collection.folder)]
    found = {folder: collection_target(folder, collection.dataset) for folder in folders if folder.is_dir()}
    targets = set(found.values())
    if len(targets) > 1:
        listed = ", ".join(f"'{folder}' holds {target}" for folder, target in found.items())
        raise UnmixError(f"{loaded.path}: the collection folders hold different instruments ({listed}); "
                         "set collection.target to the one to train")
    if not targets or targets == {collection.target}:
        return loaded
    target = targets.pop()
    log.info("collection.target: %s, from the collection's file names", target)
    data = {**loaded.data, "collection": {**loaded.data.get("collection", {}), "target": target}}
    settings = attrs.evolve(loaded.settings, collection=attrs.evolve(collection, target=target))
    return attrs.evolve(loaded, data=data, settings=settings)


def target_is_explicit(loaded: LoadedConfiguration) -> bool:
    """Whether a configuration file of the user's (not the shipped master) sets collection.target."""
    from unmix.core.config.loader import MASTER, shipped_configurations_root

    source = loaded.provenance.get("collection.target")
    if source is None:
        return False
    shipped = shipped_configurations_root()
    return shipped is None or Path(source).resolve() != (shipped / MASTER).resolve()


def check_sizes_fit_songs(loaded: LoadedConfiguration, songs: Sequence[Any], kind: str = "spectrogram") -> None:
    """Refuse an STFT or a training window longer than every training song, naming the key.

    Such a size is a typo or a unit mistake, not a lack of songs: every window would be mostly
    padding, and its arrays (bins x frames per item) can need gigabytes before the first batch.
    A waveform transform (`kind` "waveform") has no STFT, and its size counts samples.
    """
    settings = loaded.settings
    rate = settings.collection.sample_rate
    longest = max(int(song.frames) for song in songs)
    described = f"the longest training song has {longest} samples ({longest / rate:.2f} s at {rate} Hz)"
    size = settings.transformation.options.size
    if kind == "waveform":
        if size > longest:
            raise UnmixError(f"{loaded.path}: transformation.options.size {size} samples ({size / rate:.2f} s) is "
                             f"longer than every song: {described}; use at most {longest}")
        return
    fft_length = settings.spectrogram_generation.fft_length
    if fft_length > longest:
        raise UnmixError(f"{loaded.path}: spectrogram_generation.fft_length {fft_length} is longer than every song: "
                         f"{described}; use at most {_power_of_two_at_most(longest)} (1536 at 22050 Hz is usual)")
    hop = settings.hop_length
    frames = longest // hop + 1
    if size > frames:
        raise UnmixError(f"{loaded.path}: transformation.options.size {size} frames ({size * hop / rate:.2f} s at "
                         f"hop {hop}) is longer than every song: {described}, {frames} frames; use at most "
                         f"{frames} (64 is usual)")


def check_batch_size_fits(loaded: LoadedConfiguration, training: BatchSource) -> None:
    """Refuse a batch size larger than an epoch's windows: the epoch would hold no batch at all."""
    batch_size = loaded.settings.training.batch_size
    if training.item_count and batch_size > training.item_count:
        raise UnmixError(f"{loaded.path}: training.batch_size {batch_size} is more than the {training.item_count} "
                         f"windows the {len(training.songs)} training songs give per epoch; use at most "
                         f"{training.item_count} (8 to 64 is usual), or add songs")


def _power_of_two_at_most(value: int) -> int:
    return 1 << (max(1, int(value)).bit_length() - 1)


def prepare_training_data(loaded: LoadedConfiguration, seed: int = 0) -> TrainingData:
    settings = loaded.settings
    explicit = target_is_explicit(loaded)
    split = split_collection(settings.collection, lambda folder: collection_songs(settings, folder, explicit))
    for message in split.messages:
        log.warning("%s", message)
    if not split.training:
        raise UnmixError(
            f"{loaded.path}: the training split is empty ({len(split.validation)} validation, {len(split.test)} "
            "test songs); add songs or lower collection.test_data_count / validation_ratio"
        )
    transform = create_transform(settings)
    check_sizes_fit_songs(loaded, split.training, transform.kind)
    training = BatchSource(list(split.training), transform, settings, seed=seed)
    check_batch_size_fits(loaded, training)
    # Every validation window counts, the last partial batch too: a few validation songs with long
    # windows may hold fewer windows than one batch, and dropping them would leave no validation at all.
    validation = (BatchSource(list(split.validation), transform, settings, seed=seed + 1, augment=False,
                              random_offsets=False, drop_remainder=False)
                  if split.validation else None)
    bins = settings.spectrogram_generation.fft_length // 2 + 1
    return TrainingData(training=training, validation=validation, test_songs=split.test, transform=transform,
                        input_shape=transform.input_shape(bins, settings.channels))
