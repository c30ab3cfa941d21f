"""The options of the original system's other networks (`unmix.tf.seed_models`), declared without Keras.

Declared here rather than beside the layers so `unmix models` and `unmix config check` can list
and check them without importing TensorFlow.
"""

from __future__ import annotations

from unmix.core.models.options import Option

DROPOUT = Option("dropout_rate", 0.5, "dropout after the convolutions", minimum=0.0, below=1.0)

LEAKY_OPTIONS = [
    Option("alpha1", 0.1, "negative slope of the leaky ReLUs"),
    Option("alpha2", 0.01, "negative slope of the narrow convolution before the output"),
    DROPOUT,
]
MASK_OPTIONS = [
    Option("alpha", 0.3, "negative slope of the leaky ReLUs"),
    DROPOUT,
    Option("filter_factor", 1, "multiplies every convolution's filters", minimum=1),
]
RNN_OPTIONS = [Option("alpha", 0.3, "negative slope of the leaky ReLUs after the LSTMs and the dense layer")]
