"""The entry point that registers the Keras models with unmix.

Loaded by every `unmix` command, including `unmix --help`, so it must not import TensorFlow or
Keras: the networks are registered through the public model kit (`unmix.tf.kit`) by
"module:name", as any third-party model plugin registers its own, and imported only when a model
is built.
"""

from __future__ import annotations

from unmix.core.hookspecs import Register, hookimpl
from unmix.core.models import band_hourglass_options, hourglass_options
from unmix.tf import kit, seed_options

# The original system's networks that output a window of the input's shape: name -> (factory, options).
WINDOW_NETWORKS = {
    "leakyrelu": ("unmix.tf.seed_models:build_leakyrelu", seed_options.LEAKY_OPTIONS),
    "largeleakyrelu": ("unmix.tf.seed_models:build_largeleakyrelu", seed_options.LEAKY_OPTIONS),
    "mask-leakyrelu": ("unmix.tf.seed_models:build_mask_leakyrelu", seed_options.LEAKY_OPTIONS),
    "unet": ("unmix.tf.seed_models:build_unet", []),
}
# Its networks that predict only the centre transformation.options.step frames of each window.
FRAME_NETWORKS = {
    "mask": ("unmix.tf.seed_models:build_mask", seed_options.MASK_OPTIONS),
    "mask-ibm": ("unmix.tf.seed_models:build_mask_ibm", seed_options.MASK_OPTIONS),
    "rnn": ("unmix.tf.seed_models:build_rnn", seed_options.RNN_OPTIONS),
}


@hookimpl
def register_models(register: Register) -> None:
    kit.register_network(register, "hourglass", "unmix.tf.hourglass:build_hourglass",
                         options=hourglass_options.OPTIONS, check=hourglass_options.check_hourglass)
    kit.register_network(register, "band-hourglass", "unmix.tf.band_hourglass:build_band_hourglass",
                         options=band_hourglass_options.OPTIONS, check=band_hourglass_options.check_band_hourglass)
    for name, (network, options) in WINDOW_NETWORKS.items():
        kit.register_network(register, name, network, options=options)
    for name, (network, options) in FRAME_NETWORKS.items():
        kit.register_network(register, name, network, options=options, predicts_step=True)
