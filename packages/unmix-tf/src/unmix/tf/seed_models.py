"""The seed's other working networks, kept so its comparison configurations still train.

These are reconstructions from the description in docs/original-system.md §3.5 (the seed's
source is not in this repository), so layer order and sizes follow that description; where it
leaves a detail open the choice is written next to the code. What changed on purpose:

- The seed hard-coded 769 bins and one channel; here height and channels come from the input
  shape, so any fft_length and stereo work.
- `rnn` reads the window as a sequence of frames (the seed reshaped (769, size) to (size, 769)
  without transposing, which mixes bins and frames whenever size > 1).
- `unet` pads its output back to the full window; the seed only worked for 769 x 64 windows.

Their options are declared in `unmix.tf.seed_options` (which needs no Keras), and the builders
get them read and checked. The window networks (`leakyrelu`, `largeleakyrelu`, `mask-leakyrelu`,
`unet`) output a window of the input's shape. The frame networks (`mask`, `mask-ibm`, `rnn`) output
(bins, transformation.options.step, channels): the seed's mask transformation predicts the
centre `step` frames of each window from its context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import layers

from unmix.core.errors import ModelError

# Filters of the leaky-ReLU U-Net: first convolution, first and second downsampling level,
# bottleneck, the two upsampling levels, and the last convolutions before the output.
SMALL_FILTERS = {"first": 64, "down1": 64, "down2": 64, "bottom": 128, "up2": 64, "up1": 64, "last": (64, 64, 32)}
# The seed's LargeLeakyReLU: LeakyReLU's topology with 512/256/128/64 filters; the description
# (docs/original-system.md §3.5) gives no per-layer table, so the filters double at each level
# down to a 512-filter bottleneck.
LARGE_FILTERS = {
    "first": 64, "down1": 128, "down2": 256, "bottom": 512, "up2": 256, "up1": 128, "last": (128, 64, 32)
}


def build_leakyrelu(options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> keras.Model:
    """AcapellaBot's encoder/decoder with leaky ReLUs; predicts the target magnitude window directly."""
    return _leaky_unet("leakyrelu", options, input_shape, SMALL_FILTERS)


def build_largeleakyrelu(options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> keras.Model:
    return _leaky_unet("largeleakyrelu", options, input_shape, LARGE_FILTERS)


def build_mask_leakyrelu(options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> keras.Model:
    """The leaky-ReLU network unchanged (the seed commented its sigmoid out), trained on masks."""
    return _leaky_unet("mask-leakyrelu", options, input_shape, SMALL_FILTERS)


def build_mask(options: Mapping[str, Any], input_shape: tuple[int, int, int], step: int) -> keras.Model:
    """Convolutions then dense layers predicting the mask of the centre `step` frames."""
    return _frame_mask("mask", options, input_shape, step, dense=256, batch_norm=False)


def build_mask_ibm(options: Mapping[str, Any], input_shape: tuple[int, int, int], step: int) -> keras.Model:
    """`mask` with a wider dense layer and batch norm, for the ideal-binary-mask transformation."""
    return _frame_mask("mask-ibm", options, input_shape, step, dense=512, batch_norm=True)


def build_rnn(options: Mapping[str, Any], input_shape: tuple[int, int, int], step: int) -> keras.Model:
    """Three stacked LSTMs over the window's frames, then a dense layer for the centre `step` frames."""
    bins, frames, channels = input_shape
    inputs = keras.Input(shape=input_shape, name="mix_magnitude")
    x = layers.Permute((2, 1, 3))(inputs)
    x = layers.Reshape((frames, bins * channels))(x)
    x = layers.LSTM(256, return_sequences=True)(x)
    x = layers.LSTM(512, return_sequences=True)(x)
    x = layers.LSTM(1024)(x)
    x = layers.LeakyReLU(negative_slope=options["alpha"])(x)
    x = layers.Dense(bins * step * channels)(x)
    x = layers.LeakyReLU(negative_slope=options["alpha"])(x)
    outputs = layers.Reshape((bins, step, channels))(x)
    return keras.Model(inputs, outputs, name="rnn")


def build_unet(options: Mapping[str, Any], input_shape: tuple[int, int, int]) -> keras.Model:
    """A classic four-level U-Net (32 to 512 filters); skips are cropped to fit, the output padded back."""
    bins, frames, channels = input_shape
    if bins < 16 or frames < 16:
        raise ModelError(
            f"model 'unet' halves the window four times and needs at least 16 bins and 16 frames; "
            f"got {bins} bins and transformation.options.size {frames}"
        )
    inputs = keras.Input(shape=input_shape, name="mix_magnitude")
    skips = []
    x = inputs
    for filters in (32, 64, 128, 256):
        x = _double_convolution(x, filters)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = _double_convolution(x, 512)
    for filters, skip in zip((256, 128, 64, 32), reversed(skips), strict=True):
        x = layers.UpSampling2D(2)(x)
        x = layers.Conv2D(filters, 2, padding="same", activation="relu")(x)
        skip = layers.Cropping2D(((skip.shape[1] - x.shape[1], 0), (skip.shape[2] - x.shape[2], 0)))(skip)
        x = layers.Concatenate()([skip, x])
        x = _double_convolution(x, filters)
    x = layers.Dense(channels, activation="relu")(x)
    outputs = layers.ZeroPadding2D(((bins - x.shape[1], 0), (frames - x.shape[2], 0)))(x)
    return keras.Model(inputs, outputs, name="unet")


def _leaky_unet(
    name: str, options: Mapping[str, Any], input_shape: tuple[int, int, int], filters: Mapping[str, Any]
) -> keras.Model:
    """The shared body of the leaky-ReLU networks: two strided downsamplings, two upsamplings with skips."""
    bins, frames, channels = input_shape
    if frames % 4:
        raise ModelError(
            f"model '{name}' halves the window twice, so transformation.options.size must be a multiple of 4, "
            f"not {frames}"
        )
    # The seed padded 769 rows to 772 at the top; in general, enough rows to make the height divisible by 4.
    padding = -bins % 4
    alpha, dropout = options["alpha1"], options["dropout_rate"]

    def convolution(x: Any, count: int, size: int = 3, strides: int = 1, bias: bool = True, slope: float = alpha):
        x = layers.Conv2D(count, size, strides=strides, padding="same", use_bias=bias)(x)
        x = layers.LeakyReLU(negative_slope=slope)(x)
        return layers.Dropout(dropout)(x)

    inputs = keras.Input(shape=input_shape, name="mix_magnitude")
    x = layers.ZeroPadding2D(((padding, 0), (0, 0)))(inputs)
    x = layers.Dropout(dropout)(x)
    first = convolution(x, filters["first"])
    x = convolution(first, filters["down1"], size=4, strides=2, bias=False)
    x = layers.BatchNormalization()(x)
    second = convolution(x, filters["down1"])
    x = convolution(second, filters["down2"], size=4, strides=2, bias=False)
    x = layers.BatchNormalization()(x)
    x = convolution(x, filters["bottom"])
    x = convolution(x, filters["bottom"], bias=False)
    x = layers.BatchNormalization()(x)
    x = layers.Concatenate()([layers.UpSampling2D(2)(x), second])
    x = convolution(x, filters["up2"])
    x = convolution(x, filters["up2"], bias=False)
    x = layers.BatchNormalization()(x)
    x = layers.Concatenate()([layers.UpSampling2D(2)(x), first])
    *body, narrow = filters["last"]
    for count in body:
        x = convolution(x, count)
    x = convolution(x, narrow, slope=options["alpha2"])
    x = layers.Conv2D(channels, 3, padding="same", activation="linear")(x)
    outputs = layers.Cropping2D(((padding, 0), (0, 0)))(x)
    return keras.Model(inputs, outputs, name=name)


def _frame_mask(
    name: str,
    options: Mapping[str, Any],
    input_shape: tuple[int, int, int],
    step: int,
    dense: int,
    batch_norm: bool,
) -> keras.Model:
    bins, frames, channels = input_shape
    if frames < 4 or bins < 4:
        raise ModelError(
            f"model '{name}' pools the window twice, so transformation.options.size must be at least 4, "
            f"not {frames}"
        )
    factor, alpha, dropout = options["filter_factor"], options["alpha"], options["dropout_rate"]

    def convolutions(x: Any, counts: Sequence[int]) -> Any:
        # docs/original-system.md §3.5 gives no kernel size; 3x3 "same" like every other seed network.
        for count in counts:
            x = layers.Conv2D(count * factor, 3, padding="same", kernel_initializer="he_normal")(x)
            x = layers.LeakyReLU(negative_slope=alpha)(x)
        x = layers.MaxPooling2D(2)(x)
        return layers.Dropout(dropout)(x)

    inputs = keras.Input(shape=input_shape, name="mix_magnitude")
    x = convolutions(inputs, (32, 16))
    x = convolutions(x, (64, 16))
    x = layers.Flatten()(x)
    x = layers.Dense(dense, kernel_initializer="he_normal")(x)
    if batch_norm:
        x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(negative_slope=alpha)(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(bins * step * channels, kernel_initializer="he_normal")(x)
    x = layers.LeakyReLU(negative_slope=alpha)(x)
    outputs = layers.Reshape((bins, step, channels))(x)
    return keras.Model(inputs, outputs, name=name)


def _double_convolution(x: Any, filters: int) -> Any:
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    return layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
