"""The seed's production network: a single stacked-hourglass module that predicts a soft mask.

A faithful port of unmix-net's `models/hourglass.py` (after Park et al., "Music Source
Separation Using Stacked Hourglass Networks", 2018), so that parameter counts and behaviour match
the published models: with the splitstrument options (stacks 6, filters 192, batch norm, dropout
0.2) it has 7,713,857 trainable parameters. Quirks kept on purpose:

- "stacks" is the depth of the one recursive module (how often it halves the window), not a
  number of stacked hourglasses; the seed built exactly one.
- The DC row is cropped before the network so the height (fft_length/2) can be halved, and padded
  back with zeros at the end: the DC bin's mask is always 0.
- The output is a linear (unbounded) mask; prediction clips it to [0, 1], the loss multiplies it
  by the input (see `unmix.tf.losses`).
- Every group ends in a Dropout layer even at rate 0, as in the seed.
- `channels` and `classes` are accepted because the seed's configurations carry them; the seed
  never used them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import layers

from unmix.core.models.hourglass_options import FRONT_KERNELS


def build_hourglass(options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> keras.Model:
    """The hourglass for windows of `input_shape` (bins, frames, channels); output has the same shape."""
    stacks = options["stacks"]
    filters = options["hg_module"]["filters"]
    channels = input_shape[2]
    initial = options["initial_convolutions"]
    module = options["hg_module"]
    end = options["hg_module_end"]

    inputs = keras.Input(shape=input_shape, name="mix_magnitude")
    x = layers.Cropping2D(((1, 0), (0, 0)), name="crop_dc_row")(inputs)
    for count, size in zip(initial["filters"], FRONT_KERNELS, strict=True):
        x = _convolution(x, count, size, initial["batchnormalization"], initial["dropoutfactor"])
    x = _hourglass_module(x, stacks, filters, module["batchnormalization"], module["dropoutfactor"])
    x = _convolution(x, end["filters"], 3, end["batchnormalization"], end["dropoutfactor"])
    x = _convolution(x, end["filters"], 1, False, end["dropoutfactor"])
    x = layers.Conv2D(channels, 1, padding="same", activation="linear", name="mask")(x)
    outputs = layers.ZeroPadding2D(((1, 0), (0, 0)), name="pad_dc_row")(x)
    return keras.Model(inputs, outputs, name="hourglass")


def _hourglass_module(x: Any, depth: int, filters: int, batch_norm: bool, dropout: float) -> Any:
    """One level of the recursion: a full-resolution branch plus a pooled branch, added back together."""
    upper = _convolution(x, filters, 3, batch_norm, dropout)
    lower = layers.MaxPooling2D(2)(x)
    lower = _convolution(lower, filters, 3, batch_norm, dropout)
    if depth > 1:
        lower = _hourglass_module(lower, depth - 1, filters, batch_norm, dropout)
    else:
        lower = _convolution(lower, filters, 3, batch_norm, dropout)
    lower = _convolution(lower, filters, 3, batch_norm, dropout)
    return layers.Add()([upper, layers.UpSampling2D(2)(lower)])


def _convolution(x: Any, filters: int, size: int, batch_norm: bool, dropout: float) -> Any:
    x = layers.Conv2D(filters, size, padding="same", activation="relu")(x)
    if batch_norm:
        x = layers.BatchNormalization()(x)
    return layers.Dropout(dropout)(x)
