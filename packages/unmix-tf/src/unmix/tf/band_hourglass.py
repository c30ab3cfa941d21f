"""The band hourglass in Keras: unmix's CPU-first mask model (see docs/models.md for the measurements).

Per frame, the bins of every channel are standardised (batch norm, the learned counterpart of
Open-Unmix's input mean and scale) and folded by one dense layer into `bands` features. The
hourglass then runs along time only, with 1-D convolutions over the band features: the seed's
recursion (a full-rate branch plus a pooled branch, upsampled and added) at a fraction of the
cost, because nothing is convolved at full frequency resolution. The band features skip around
the hourglass, and two dense layers learn the way back to one value per bin and channel. A
sigmoid bounds the mask to [0, 1], the range prediction clips to anyway, so the loss never
rewards the negative masks a linear output drifts into.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import layers


def build_band_hourglass(options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> keras.Model:
    """The band hourglass for windows of `input_shape` (bins, frames, channels); output has the same shape."""
    bins, frames, channels = input_shape
    bands = options["bands"]
    dropout = options["dropoutfactor"]

    inputs = keras.Input(shape=input_shape, name="mix_magnitude")
    frames_first = layers.Permute((2, 1, 3), name="frames_first")(inputs)
    spectra = layers.Reshape((frames, bins * channels), name="frame_spectra")(frames_first)
    spectra = layers.BatchNormalization(name="bin_scale")(spectra)
    band_features = layers.Dense(bands, use_bias=False, name="to_bands")(spectra)
    band_features = layers.BatchNormalization(name="to_bands_norm")(band_features)
    band_features = layers.Activation("tanh", name="to_bands_tanh")(band_features)

    x = _time_hourglass(band_features, options["stacks"], options["filters"], options["kernel_size"], dropout)
    x = layers.Concatenate(name="skip")([band_features, x])
    x = layers.Dense(bands, use_bias=False, name="from_bands")(x)
    x = layers.BatchNormalization(name="from_bands_norm")(x)
    x = layers.Activation("relu", name="from_bands_relu")(x)
    x = layers.Dense(bins * channels, use_bias=False, name="to_bins")(x)
    x = layers.BatchNormalization(name="to_bins_norm")(x)
    x = layers.Activation("sigmoid", name="mask")(x)
    x = layers.Reshape((frames, bins, channels), name="frame_masks")(x)
    outputs = layers.Permute((2, 1, 3), name="bins_first")(x)
    return keras.Model(inputs, outputs, name="band_hourglass")


def _time_hourglass(x: Any, depth: int, filters: int, size: int, dropout: float) -> Any:
    """One level of the recursion along time: a full-rate branch plus a pooled branch, added back together."""
    upper = _convolution(x, filters, size, dropout)
    lower = layers.MaxPooling1D(2)(x)
    lower = _convolution(lower, filters, size, dropout)
    if depth > 1:
        lower = _time_hourglass(lower, depth - 1, filters, size, dropout)
    else:
        lower = _convolution(lower, filters, size, dropout)
    lower = _convolution(lower, filters, size, dropout)
    return layers.Add()([upper, layers.UpSampling1D(2)(lower)])


def _convolution(x: Any, filters: int, size: int, dropout: float) -> Any:
    x = layers.Conv1D(filters, size, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    return layers.Dropout(dropout)(x) if dropout else x
