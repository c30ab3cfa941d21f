"""Options of the band-split and mel-band RoFormers (`unmix.torch.roformer`), declared without torch.

`unmix models`, `unmix config check` and `unmix config show` read these lists, and every `unmix`
command imports this module through the plugin, so it imports neither torch nor (until a mel
layout is asked for) numpy. The option names are the keys of the `model:` section of a
Music-Source-Separation-Training (MSST) YAML file, with the same meaning, so such a file's model
settings carry over one to one; `stereo` and `num_stems` are not options (the channels come from
`collection.stereo`, and a model separates one target), nor are MSST's training-only keys
(`multi_stft_*`, `use_torch_checkpoint`, `flash_attn`: attention here always goes through
`torch.nn.functional.scaled_dot_product_attention`, which computes the same thing).

Defaults: the network's size is the papers' (dim 384, depth 12, one time and one band transformer
layer per block, as every MSST configuration sets it; MSST's constructor default is two each);
the rest are MSST's constructor defaults (which differ between the two models for the dropouts
and `mask_estimator_depth`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unmix.core.errors import ModelError
from unmix.core.models.options import PREFIX, Option

BS_ROFORMER_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)
"""Bins per band of the band-split RoFormer paper (Lu et al. 2023) for an n_fft of 2048: 62 bands
over 1025 bins, 2 bins each up to about 1 kHz at 44.1 kHz, 4 up to 2 kHz, 12 up to 4 kHz, 24 up
to 8 kHz, 48 up to 16 kHz, then two wide bands (MSST's DEFAULT_FREQS_PER_BANDS)."""


def _common(attn_dropout: float, ff_dropout: float, mask_estimator_depth: int, mask_help: str) -> list[Option]:
    return [
        Option("dim", 384, "features of each band at every frame, through all transformer blocks", minimum=1),
        Option("depth", 12, "blocks, each a transformer across time (per band) then one across bands (per frame)",
               minimum=1),
        Option("time_transformer_depth", 1, "attention + feed-forward layers of each block's transformer across time "
               "(MSST's constructor default is 2; its configurations use 1)", minimum=1),
        Option("freq_transformer_depth", 1, "attention + feed-forward layers of each block's transformer across bands",
               minimum=1),
        Option("heads", 8, "attention heads", minimum=1),
        Option("dim_head", 64, "features per attention head (even: the rotary embedding turns pairs)", minimum=2),
        Option("attn_dropout", attn_dropout, "dropout of the attention weights and the attention output",
               minimum=0.0, below=1.0),
        Option("ff_dropout", ff_dropout, "dropout inside and after each feed-forward layer", minimum=0.0, below=1.0),
        Option("mask_estimator_depth", mask_estimator_depth, mask_help, minimum=1),
        Option("mlp_expansion_factor", 4, "hidden width of the mask estimators' MLPs, in multiples of dim",
               minimum=1),
        Option("stft_n_fft", 2048, "FFT size of the model's own STFT (stft_n_fft / 2 + 1 bins)", minimum=16),
        Option("stft_hop_length", 512, "STFT hop in samples (MSST's vocal models use 441 at 44.1 kHz: 10 ms)",
               minimum=1),
        Option("stft_win_length", 0, "Hann window length in samples, at most stft_n_fft (0: stft_n_fft, the "
               "2048 of MSST's configurations)", minimum=0),
        Option("stft_normalized", False, "scale the STFT by 1/sqrt(window length) (torch.stft's normalized)"),
        Option("zero_dc", True, "zero the 0 Hz bin of the estimate before the inverse STFT"),
    ]


BS_ROFORMER_OPTIONS = [
    *_common(0.0, 0.0, 2, "linear layers of each band's mask MLP (tanh between them), then a GLU"),
    Option("freqs_per_bands", list(BS_ROFORMER_BANDS),
           "STFT bins of each band, low to high; they must add up to stft_n_fft / 2 + 1 (the default is the "
           "paper's 62 bands for stft_n_fft 2048)"),
]

MEL_ROFORMER_OPTIONS = [
    *_common(0.1, 0.1, 1, "hidden layers of each band's mask MLP: mask_estimator_depth + 1 linear layers with "
             "tanh between them, then a GLU (one more than the band-split model's for the same value, as in MSST)"),
    Option("num_bands", 60, "overlapping mel-scale bands (Slaney's mel scale, as librosa's filterbank)", minimum=2),
    Option("sample_rate", 44100, "sample rate the mel bands are laid out for: set it to collection.sample_rate "
           "(it moves the bands' edges, not the model's rate)", minimum=1),
]


def window_length(options: dict[str, Any]) -> int:
    """The STFT's window length: `stft_win_length`, or `stft_n_fft` where that is 0."""
    return int(options["stft_win_length"] or options["stft_n_fft"])


def _check_common(model: str, options: dict[str, Any], input_shape: Sequence[int]) -> None:
    if options["dim_head"] % 2:
        raise ModelError(f"{PREFIX}.dim_head is {options['dim_head']}; it must be even (the rotary position "
                         "embedding rotates pairs of features)")
    if options["stft_win_length"] > options["stft_n_fft"] or options["stft_win_length"] == 1:
        raise ModelError(f"{PREFIX}.stft_win_length is {options['stft_win_length']}; it must be between 2 and "
                         f"stft_n_fft ({options['stft_n_fft']}), or 0 for stft_n_fft")
    if options["stft_hop_length"] > window_length(options) // 2:
        raise ModelError(f"{PREFIX}.stft_hop_length is {options['stft_hop_length']}; it must be at most half of "
                         f"the window ({window_length(options)} samples) for the inverse STFT to reconstruct")
    if len(input_shape) == 2:  # a waveform model's (channels, samples)
        channels, samples = (int(size) for size in input_shape)
        if channels not in (1, 2):
            raise ModelError(f"model '{model}' takes mono or stereo audio, not {channels} channels")
        if samples < options["stft_n_fft"]:
            raise ModelError(f"model '{model}' needs chunks of at least stft_n_fft ({options['stft_n_fft']}) samples, "
                             f"but transformation.options.size is {samples}")


def check_bs_roformer(options: dict[str, Any], input_shape: Sequence[int]) -> None:
    """Bands that are whole numbers adding up to the STFT's bins, and a reconstructing STFT."""
    _check_common("bs-roformer", options, input_shape)
    bands = options["freqs_per_bands"]
    bins = options["stft_n_fft"] // 2 + 1
    if (not isinstance(bands, (list, tuple)) or len(bands) < 2
            or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in bands)):
        raise ModelError(f"{PREFIX}.freqs_per_bands must be a list of at least 2 whole numbers of bins, each at "
                         f"least 1, not {bands!r}")
    if sum(bands) != bins:
        raise ModelError(f"{PREFIX}.freqs_per_bands adds up to {sum(bands)} bins, but stft_n_fft "
                         f"{options['stft_n_fft']} gives {bins}: the bands must cover every bin once")


def check_mel_roformer(options: dict[str, Any], input_shape: Sequence[int]) -> None:
    """A reconstructing STFT, and mel bands that are none of them empty."""
    _check_common("mel-roformer", options, input_shape)
    bands = mel_bands(options["sample_rate"], options["stft_n_fft"], options["num_bands"])
    empty = [index for index, band in enumerate(bands) if not band.any()]
    if empty:
        raise ModelError(f"{PREFIX}.num_bands is {options['num_bands']}, but with stft_n_fft {options['stft_n_fft']} "
                         f"at sample_rate {options['sample_rate']} {len(empty)} of the mel bands hold no STFT bin "
                         f"(the first is band {empty[0]}): use fewer bands or a larger stft_n_fft")


_MEL_STEP_HZ = 200.0 / 3
_LOG_MEL = 1000.0 / _MEL_STEP_HZ  # where the scale turns logarithmic, as librosa computes it (not exactly 15)


def _log_step() -> float:
    import numpy as np

    return float(np.log(6.4) / 27.0)


def _hz_to_mel(hz: Any) -> Any:
    """Slaney's mel scale (librosa's default, htk=False): linear to 1 kHz, logarithmic above."""
    import numpy as np

    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _MEL_STEP_HZ
    logarithmic = _LOG_MEL + np.log(np.maximum(hz, 1e-300) / 1000.0) / _log_step()
    return np.where(hz >= 1000.0, logarithmic, linear)


def _mel_to_hz(mel: Any) -> Any:
    import numpy as np

    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _LOG_MEL, 1000.0 * np.exp(_log_step() * (mel - _LOG_MEL)), _MEL_STEP_HZ * mel)


def mel_bands(sample_rate: int, n_fft: int, num_bands: int) -> Any:
    """Which STFT bins each mel band covers: a (num_bands, n_fft // 2 + 1) boolean numpy array.

    A bin belongs to a band where the band's triangular mel filter is positive: the nonzero pattern
    of librosa's `filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=num_bands)` (Slaney's scale and
    area normalisation, float32 weights), which the Mel-band RoFormer paper and MSST take as their
    bands, computed here the same way in numpy. As MSST does, the 0 Hz bin joins the first band and
    the highest bin the last, so that every bin is covered.
    """
    import numpy as np

    bins = n_fft // 2 + 1
    bin_hz = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), num_bands + 2))
    widths = np.diff(edges_hz)
    distances = np.subtract.outer(edges_hz, bin_hz)
    weights = np.zeros((num_bands, bins), dtype=np.float32)
    for band in range(num_bands):
        rising = -distances[band] / widths[band]
        falling = distances[band + 2] / widths[band + 1]
        weights[band] = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:num_bands + 2] - edges_hz[:num_bands]))[:, np.newaxis]
    covered = weights > 0
    covered[0, 0] = True
    covered[-1, -1] = True
    return covered
