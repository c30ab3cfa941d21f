"""Band-split RoFormer (Lu et al. 2023) and Mel-band RoFormer (Wang et al. 2023) as unmix waveform networks.

Both take the mix as audio, (batch, channels, samples) float32, and return the target's audio of
exactly that shape. Inside:

1. The model's own STFT (Hann window, `stft_n_fft`, `stft_hop_length`, `stft_win_length`) of every
   channel; stereo channels are interleaved into the frequency axis (bin 0 left, bin 0 right,
   bin 1 left, ...), as the papers and Music-Source-Separation-Training (MSST) do.
2. Band split: the bins are grouped into bands, fixed bins per band for the band-split model
   (`freqs_per_bands`), overlapping mel-scale bands for the mel-band model (`num_bands`). Each
   frame's bins of one band, real and imaginary parts of every channel, go through that band's
   RMSNorm and linear layer to `dim` features: a (frames, bands, dim) grid per song.
3. `depth` blocks, each a transformer across time (every band on its own) then a transformer across
   bands (every frame on its own). Their layers are pre-norm residual attention and feed-forward
   layers: RMSNorm, multi-head attention with rotary position embeddings along the sequence and a
   sigmoid gate per head, then RMSNorm, a GELU MLP of 4 * dim.
4. Mask estimation: per band, an MLP (tanh between layers) and a GLU give a complex mask for the
   band's bins and channels; the mel-band model averages the masks of a bin that several bands
   cover. The mask multiplies the mix's complex STFT, and the inverse STFT gives the target with
   the input's length.

Module and parameter names, their nesting and the meaning of every option follow MSST's
`models/bs_roformer/bs_roformer.py` and `mel_band_roformer.py` (written on lucidrains'
BS-RoFormer), so that a state dict of an MSST model loads into these classes by name:
`band_split.to_features.{band}.{0: RMSNorm, 1: Linear}`, `layers.{block}.{0: time, 1: bands}` as
transformers whose `layers.{layer}.{0: attention, 1: feed-forward}` hold `norm`, `to_qkv`,
`to_gates`, `to_out.0` and `rotary_embed.freqs` (one rotary embedding shared by all time
transformers and one by all band transformers, as there), and `net.{0: RMSNorm, 1, 4: Linear}`,
then `final_norm` (band-split; the mel-band model's transformers end in their own `norm`
instead), and `mask_estimators.0.to_freqs.{band}.0.{0, 2, ...}` for the MLP's linear layers. The
code is unmix's own, in plain torch (no einops, beartype or rotary-embedding package).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from unmix.torch.roformer_options import mel_bands, window_length


class RMSNorm(nn.Module):
    """x / |x| * sqrt(features) * gamma, over the last axis."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.scale = features**0.5
        self.gamma = nn.Parameter(torch.ones(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.normalize(x, dim=-1) * (self.gamma * self.scale)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021) over the second-to-last axis of (..., positions, features).

    Feature pairs (0, 1), (2, 3), ... turn by position * freqs[pair], freqs[i] = 10000^(-2i / features).
    `freqs` is a parameter that is not trained, as in the rotary-embedding package MSST uses, so it
    sits in state dicts under the same name.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        exponents = torch.arange(0, features, 2)[: features // 2].float() / features
        self.freqs = nn.Parameter(1.0 / (10000.0**exponents), requires_grad=False)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """`x` with its feature pairs turned by their positions (a method, not `forward`: the summary's hooks
        would list this weightless step once per attention layer)."""
        positions = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        angles = torch.outer(positions, self.freqs.float()).repeat_interleave(2, dim=-1)
        pairs = x.float().unflatten(-1, (-1, 2))
        turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return (x.float() * angles.cos() + turned * angles.sin()).to(x.dtype)


class Attention(nn.Module):
    """Pre-norm multi-head self-attention with rotary positions and a sigmoid gate per head."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, rotary_embed: RotaryEmbedding) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.rotary_embed = rotary_embed
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        rows, length, _features = x.shape
        # (rows, length, (q/k/v, heads, dim_head)) -> three of (rows, heads, length, dim_head)
        query, key, value = self.to_qkv(x).reshape(rows, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        query, key = self.rotary_embed.rotate(query), self.rotary_embed.rotate(key)
        out = functional.scaled_dot_product_attention(query, key, value,
                                                      dropout_p=self.dropout if self.training else 0.0)
        out = out * self.to_gates(x).transpose(1, 2).unsqueeze(-1).sigmoid()
        return self.to_out(out.transpose(1, 2).reshape(rows, length, -1))


class FeedForward(nn.Module):
    """Pre-norm MLP: RMSNorm, linear to mult * dim, GELU, dropout, linear back, dropout."""

    def __init__(self, dim: int, dropout: float, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(RMSNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mult, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """`depth` residual (attention, feed-forward) pairs over (rows, length, dim); optionally an RMSNorm at the end."""

    def __init__(self, options: Mapping[str, Any], depth: int, rotary_embed: RotaryEmbedding,
                 norm_output: bool) -> None:
        super().__init__()
        dim = options["dim"]
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, options["heads"], options["dim_head"], options["attn_dropout"], rotary_embed),
                           FeedForward(dim, options["ff_dropout"])])
            for _ in range(depth)
        )
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, feed_forward in self.layers:
            x = attention(x) + x
            x = feed_forward(x) + x
        return self.norm(x)


class BandSplit(nn.Module):
    """(batch, frames, all bands' features) -> (batch, frames, bands, dim): per band RMSNorm and a linear layer."""

    def __init__(self, dim: int, band_features: Sequence[int]) -> None:
        super().__init__()
        self.band_features = tuple(band_features)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(features), nn.Linear(features, dim))
                                         for features in self.band_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x.split(self.band_features, dim=-1)
        features = [to_features(band) for band, to_features in zip(bands, self.to_features, strict=True)]
        return torch.stack(features, dim=-2)


def _mlp(dim_in: int, dim_out: int, dim_hidden: int, linear_layers: int) -> nn.Sequential:
    widths = [dim_in] + [dim_hidden] * (linear_layers - 1) + [dim_out]
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if index:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)


class MaskEstimator(nn.Module):
    """(batch, frames, bands, dim) -> (batch, frames, all bands' features): per band an MLP and a GLU."""

    def __init__(self, dim: int, band_features: Sequence[int], linear_layers: int, expansion: int) -> None:
        super().__init__()
        self.to_freqs = nn.ModuleList(
            nn.Sequential(_mlp(dim, 2 * features, dim * expansion, linear_layers), nn.GLU(dim=-1))
            for features in band_features
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masks = [to_freqs(band) for band, to_freqs in zip(x.unbind(dim=-2), self.to_freqs, strict=True)]
        return torch.cat(masks, dim=-1)


class _Roformer(nn.Module):
    """What both RoFormers share: the STFT, the transformer blocks and the complex mask; a subclass picks the bands."""

    norm_each_transformer = False
    """The mel-band model ends each transformer in an RMSNorm; the band-split model has one `final_norm` instead."""

    def __init__(self, options: Mapping[str, Any], input_shape: Sequence[int]) -> None:
        super().__init__()
        self.options = dict(options)
        self.channels = int(input_shape[0])
        if self.channels not in (1, 2):
            raise ValueError(f"a RoFormer takes mono or stereo audio, not {self.channels} channels")
        self.bins = options["stft_n_fft"] // 2 + 1
        time_rotary_embed = RotaryEmbedding(options["dim_head"])
        freq_rotary_embed = RotaryEmbedding(options["dim_head"])
        self.layers = nn.ModuleList(
            nn.ModuleList([
                Transformer(options, options["time_transformer_depth"], time_rotary_embed, self.norm_each_transformer),
                Transformer(options, options["freq_transformer_depth"], freq_rotary_embed, self.norm_each_transformer),
            ])
            for _ in range(options["depth"])
        )

    def _build_bands(self, band_features: Sequence[int], mask_linear_layers: int) -> None:
        dim = self.options["dim"]
        self.band_split = BandSplit(dim, band_features)
        self.mask_estimators = nn.ModuleList(
            [MaskEstimator(dim, band_features, mask_linear_layers, self.options["mlp_expansion_factor"])])

    @property
    def stft(self) -> dict[str, Any]:
        """The STFT around `masked_spectrogram`, as `unmix export` writes it down for a runtime to redo."""
        return {"n_fft": self.options["stft_n_fft"], "hop_length": self.options["stft_hop_length"],
                "win_length": window_length(self.options), "normalized": self.options["stft_normalized"],
                "zero_dc": self.options["zero_dc"]}

    def _stft_settings(self, device: torch.device) -> dict[str, Any]:
        settings = {key: value for key, value in self.stft.items() if key != "zero_dc"}
        return {**settings, "window": torch.hann_window(settings["win_length"], device=device)}

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, channels, samples) -> complex STFT (batch, bins * channels, frames), channels interleaved."""
        batch, channels, samples = audio.shape
        with _full_precision(audio.device):
            stft = torch.stft(audio.float().reshape(batch * channels, samples), **self._stft_settings(audio.device),
                              return_complex=True)
        return stft.reshape(batch, channels, self.bins, -1).transpose(1, 2).reshape(batch, self.bins * channels, -1)

    def waveform(self, stft: torch.Tensor, samples: int) -> torch.Tensor:
        """The inverse of `spectrogram`, cut or padded to `samples`."""
        batch, _rows, frames = stft.shape
        stft = stft.reshape(batch, self.bins, self.channels, frames).transpose(1, 2)
        if self.options["zero_dc"]:
            stft = stft.index_fill(2, torch.tensor([0], device=stft.device), 0)
        stft = stft.reshape(batch * self.channels, self.bins, frames)
        if stft.is_meta:  # unmix's summary traces networks on the meta device, where torch.istft has no kernel
            return torch.empty((batch, self.channels, samples), device=stft.device)
        with _full_precision(stft.device):
            audio = torch.istft(stft, **self._stft_settings(stft.device), length=samples)
        return audio.reshape(batch, self.channels, samples)

    def band_input(self, stft: torch.Tensor) -> torch.Tensor:
        """Real (batch, bins * channels, frames, real/imaginary) -> features (batch, frames, all bands' features)."""
        raise NotImplementedError

    def band_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The estimated (batch, frames, all bands' features) as one complex mask per row: (batch, rows, frames, 2)."""
        raise NotImplementedError

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        samples = audio.shape[-1]
        stft = torch.view_as_real(self.spectrogram(audio))
        return self.waveform(torch.view_as_complex(self.masked_spectrogram(stft).contiguous()), samples)

    def masked_spectrogram(self, stft: torch.Tensor) -> torch.Tensor:
        """Everything between the STFT and its inverse, in real numbers: the mix's (batch, bins * channels,
        frames, real/imaginary) to the target's. Exported to ONNX on its own, which has no complex tensors
        and no inverse STFT (`unmix export`)."""
        x = self.band_split(self.band_input(stft))
        batch, frames, bands, dim = x.shape
        for time_transformer, freq_transformer in self.layers:
            x = x.transpose(1, 2).reshape(batch * bands, frames, dim)
            x = time_transformer(x).reshape(batch, bands, frames, dim).transpose(1, 2)
            x = freq_transformer(x.reshape(batch * frames, bands, dim)).reshape(batch, frames, bands, dim)
        if not self.norm_each_transformer:
            x = self.final_norm(x)
        mask = self.band_mask(self.mask_estimators[0](x))
        real, imaginary = stft.float().unbind(-1)
        mask_real, mask_imaginary = mask.unbind(-1)
        return torch.stack((real * mask_real - imaginary * mask_imaginary,
                            real * mask_imaginary + imaginary * mask_real), dim=-1)


def _full_precision(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast off for the (inverse) STFT, which mixed precision would otherwise leave to half-precision masks."""
    if device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _complex_mask(mask: torch.Tensor) -> torch.Tensor:
    """(batch, frames, (rows, real/imaginary)) -> real (batch, rows, frames, 2), float32."""
    batch, frames, features = mask.shape
    return mask.float().reshape(batch, frames, features // 2, 2).transpose(1, 2)


class BSRoformer(_Roformer):
    """Band-split RoFormer: fixed bands of `freqs_per_bands` bins each, covering every bin once."""

    def __init__(self, options: Mapping[str, Any], input_shape: Sequence[int]) -> None:
        super().__init__(options, input_shape)
        self.final_norm = RMSNorm(options["dim"])
        band_features = [2 * bins * self.channels for bins in options["freqs_per_bands"]]
        self._build_bands(band_features, options["mask_estimator_depth"])

    def band_input(self, stft: torch.Tensor) -> torch.Tensor:
        return stft.transpose(1, 2).flatten(2)

    def band_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return _complex_mask(mask)


class MelBandRoformer(_Roformer):
    """Mel-band RoFormer: `num_bands` overlapping mel-scale bands; a bin's masks from several bands are averaged."""

    norm_each_transformer = True

    def __init__(self, options: Mapping[str, Any], input_shape: Sequence[int]) -> None:
        super().__init__(options, input_shape)
        covered = mel_bands(options["sample_rate"], options["stft_n_fft"], options["num_bands"])
        bins = np.concatenate([np.flatnonzero(band) for band in covered])
        # Rows of the interleaved spectrogram: bin b of channel c is row b * channels + c.
        rows = (bins[:, None] * self.channels + np.arange(self.channels)).reshape(-1)
        bands_per_row = np.repeat(covered.sum(axis=0), self.channels)
        self.register_buffer("freq_indices", torch.tensor(rows.tolist(), dtype=torch.long), persistent=False)
        self.register_buffer("num_bands_per_freq", torch.tensor(bands_per_row.tolist(), dtype=torch.long),
                             persistent=False)
        self.register_buffer("band_entries_of_row", torch.tensor(_entries_per_row(rows, len(bands_per_row)).tolist(),
                                                                 dtype=torch.long), persistent=False)
        band_features = [2 * int(count) * self.channels for count in covered.sum(axis=1)]
        self._build_bands(band_features, options["mask_estimator_depth"] + 1)

    def band_input(self, stft: torch.Tensor) -> torch.Tensor:
        return stft[:, self.freq_indices].transpose(1, 2).flatten(2)

    def band_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The bands' masks of each row gathered and summed, not scattered with `index_add`: exported to ONNX,
        a scatter-add onto repeated rows is onnxruntime's ScatterND, whose threads race on those rows
        (onnxruntime 1.32 on 2 threads: one call in about ten off by up to 1.0 in the mask)."""
        per_band = _complex_mask(mask)
        batch, _entries, frames, parts = per_band.shape
        padded = torch.cat((per_band, per_band.new_zeros(batch, 1, frames, parts)), dim=1)
        summed = sum(padded[:, entries] for entries in self.band_entries_of_row.unbind(1))
        return summed / self.num_bands_per_freq[:, None, None]


def _entries_per_row(rows: np.ndarray, row_count: int) -> np.ndarray:
    """(row_count, most bands of a row): the positions in the bands' concatenated rows that hold each row, padded
    with len(rows), which `band_mask` points at a zero entry."""
    entries = [np.flatnonzero(rows == row) for row in range(row_count)]
    widest = max(len(found) for found in entries)
    return np.stack([np.pad(found, (0, widest - len(found)), constant_values=len(rows)) for found in entries])
