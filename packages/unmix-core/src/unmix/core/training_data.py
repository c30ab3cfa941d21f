"""From a configuration to the batches the training driver feeds the model.

The collection (one folder, or several mixed by ratio) is cached on first use (decoded and
resampled once, memory-mapped afterwards), split as the seed did, and each split becomes a
`BatchSource`. Validation batches are never augmented.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs

from unmix.core.batches import BatchSource
from unmix.core.cache import open_songs
from unmix.core.collection import split_collection
from unmix.core.config import LoadedConfiguration
from unmix.core.config_schema import Configuration
from unmix.core.errors import UnmixError
from unmix.core.plugins import plugin_manager
from unmix.core.transforms import Transform

log = logging.getLogger("unmix")


@attrs.define
class TrainingData:
    training: BatchSource
    validation: BatchSource | None
    test_songs: tuple[Any, ...]
    transform: Transform
    input_shape: tuple[int, int, int]

    def describe(self) -> str:
        validation_songs = len(self.validation.songs) if self.validation is not None else 0
        validation_batches = len(self.validation) if self.validation is not None else 0
        return (f"{len(self.training.songs)} training songs ({len(self.training)} batches), "
                f"{validation_songs} validation songs ({validation_batches} batches), "
                f"{len(self.test_songs)} test songs")


def create_transform(settings: Configuration) -> Transform:
    transform_class = plugin_manager().get("transforms", settings.transformation.name)
    return transform_class.from_configuration(settings)


def collection_songs(settings: Configuration, folder: Path) -> list:
    """The songs of one collection folder, cached at the configuration's rate and channels."""
    collection = settings.collection
    if not folder.is_dir():
        raise UnmixError(f"collection folder '{folder}' does not exist; set collection.folder "
                         "(or UNMIX_COLLECTION_DIR) to a folder of song folders")
    return open_songs(folder, sample_rate=collection.sample_rate, channels=settings.channels,
                      target=collection.target, dataset=collection.dataset)


def prepare_training_data(loaded: LoadedConfiguration, seed: int = 0) -> TrainingData:
    settings = loaded.settings
    split = split_collection(settings.collection, lambda folder: collection_songs(settings, folder))
    for message in split.messages:
        log.warning("%s", message)
    if not split.training:
        raise UnmixError(
            f"{loaded.path}: the training split is empty ({len(split.validation)} validation, {len(split.test)} "
            "test songs); add songs or lower collection.test_data_count / validation_ratio"
        )
    transform = create_transform(settings)
    training = BatchSource(list(split.training), transform, settings, seed=seed)
    validation = (BatchSource(list(split.validation), transform, settings, seed=seed + 1, augment=False)
                  if split.validation else None)
    bins = settings.spectrogram_generation.fft_length // 2 + 1
    return TrainingData(training=training, validation=validation, test_songs=split.test, transform=transform,
                        input_shape=transform.input_shape(bins, settings.channels))
