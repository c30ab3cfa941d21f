"""The metadata an exported file carries (ONNX `metadata_props`, all strings; JSON where structured).

Everything a runtime needs to separate with the file is here, so the file stands alone: the whole
configuration of the run it came from (rate, channels, target, STFT and transform settings, model
name and options), what the graph computes (`GRAPH`: the network as `predict` calls it, or the part
of a waveform model between its STFT and inverse STFT, with the STFT settings), and where it came from.
"""

from __future__ import annotations

FORMAT_VERSION = "1"
"""Bumped when a key changes meaning; a runtime refuses files of a version it does not know."""

PREFIX = "unmix."
FORMAT = "unmix.format_version"
CONFIGURATION = "unmix.configuration"  # JSON: the run's merged configuration
GRAPH = "unmix.graph"  # JSON: {"graph": "predict"} or {"graph": "masked_spectrogram", "stft": {...}}
INPUT_SHAPE = "unmix.input_shape"  # JSON: one example's shape, (bins, frames, channels) or (channels, samples)
KIND = "unmix.kind"  # "spectrogram" or "waveform"
MODEL = "unmix.model"  # "<backend>:<name>" it was trained as
PARAMETERS = "unmix.parameters"  # trainable parameters of the network
RUN = "unmix.run"  # the run folder's name
SAMPLE_RATE = "unmix.sample_rate"
CHANNELS = "unmix.channels"
TARGET = "unmix.target"
UNMIX_VERSION = "unmix.unmix_version"  # unmix-core's version that exported it
