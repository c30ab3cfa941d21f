"""Open-Unmix trained from scratch on unmix's songs: an outside reference for the quality benchmark.

unmix's own models are only as convincing as what they are compared with. Open-Unmix (Stöter et
al. 2019, https://github.com/sigsep/open-unmix-pytorch) is a published reference spectrogram
network with a published training recipe, so `train_open_unmix` trains it with that recipe
(scripts/train.py's defaults) on the same songs and for the same wall-clock budget as an unmix
model, and
`OpenUnmixRun.separate_samples` separates songs with it the way unmix's engine post-processes
(a clipped ratio mask on the mixture, mixture phase), so that the benchmark compares networks and
training, not post-processing.

The recipe, as followed here:

- loss: MSE between the network's output (OpenUnmix.forward returns its mask times the mixture
  magnitude, i.e. an estimated target magnitude) and the target magnitude;
- Adam, lr 1e-3, weight decay 1e-5; ReduceLROnPlateau(factor 0.3, patience 80, cooldown 10) on the
  validation loss, stepped once per epoch (it cannot trigger within a short budget; it is kept
  because it is the recipe);
- epochs of 64 random 6 s excerpts per training song, batches of 16; every excerpt remixes a target
  excerpt and a rest excerpt drawn from independently chosen songs at independent offsets
  (random_track_mix), each source scaled by a gain uniform in [0.25, 1.25] and, for stereo, its
  channels swapped with probability 1/2; a song shorter than 6 s is used whole, zero padded;
- input normalisation: per-bin mean and standard deviation of the training mixtures' magnitudes
  (whole songs, unaugmented, channels averaged in the magnitude domain as the recipe's mono
  downmix does; standard deviations floored at 1e-4 of the largest), passed as
  OpenUnmix(input_mean=mean, input_scale=std): the model itself stores -mean and 1/std and computes
  (x - mean) / std, so the plain statistics are what it expects;
- network: hidden size 512, 3 bidirectional LSTM layers, nb_channels = the songs' channel count,
  max_bin = the bins up to min(16 kHz, Nyquist);
- STFT: n_fft 4096 and hop 1024 at 44.1 kHz, scaled with the sample rate (n_fft rounded to a power
  of two, hop n_fft / 4: 2048 and 512 at 22.05 kHz), periodic Hann window, magnitudes (power 1).

Where this departs from the recipe, it is to fit unmix's conventions or a time budget: frames are
centred with zero padding (unmix.core.data.audio.stft's convention; the recipe trains uncentred and
reflect-pads at inference), training stops after `budget_seconds` of wall time instead of after
1000 epochs or early stopping, and besides the recipe's validation after every epoch (on whole
songs) there is one more when the budget runs out mid-epoch. Separation applies no Wiener
filtering (the recipe's Separator can; unmix's engine does not, and the comparison should not
hinge on it).
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
import types
from collections.abc import Sequence

import attrs
import numpy as np
import torch
import tqdm

from unmix.core.data.tracks import SongAudio

if importlib.util.find_spec("openunmix") is None:
    raise ImportError("Open-Unmix is not installed: pip install openunmix --no-deps")
if importlib.util.find_spec("torchaudio") is None:
    # openunmix/utils.py imports torchaudio for file I/O only, and no torchaudio is built for this torch.
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))

from openunmix.model import OpenUnmix  # noqa: E402
from openunmix.utils import bandwidth_to_max_bin  # noqa: E402

__all__ = ["OpenUnmixRun", "recipe_stft_sizes", "train_open_unmix", "untrained_open_unmix"]

RECIPE_SAMPLE_RATE = 44100
RECIPE_N_FFT = 4096
RECIPE_BANDWIDTH_HZ = 16000.0
EXCERPT_SECONDS = 6.0
BATCH_SIZE = 16
EXCERPTS_PER_SONG = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-5
GAIN_RANGE = (0.25, 1.25)
HIDDEN_SIZE = 512
LSTM_LAYERS = 3


@attrs.frozen(eq=False)
class OpenUnmixRun:
    """A trained Open-Unmix network and what its training cost, ready to separate songs.

    `epochs` is the completed fraction of epochs (steps / steps per epoch), since the budget
    usually ends training mid-epoch. `seconds` is the whole training wall time: input statistics,
    optimiser steps and validation. `best_validation_loss` is None when there were no validation
    songs (the network then holds the last state rather than the best).
    """

    network: OpenUnmix = attrs.field(repr=False)
    sample_rate: int
    channels: int
    n_fft: int
    hop_length: int
    epochs: float
    steps: int
    seconds: float
    best_validation_loss: float | None
    parameters: int

    def separate_samples(self, mix: np.ndarray) -> np.ndarray:
        """The target estimated from a (channels, samples) float32 mix, same shape.

        The network's magnitude estimate over |mix| is a mask, clipped to [0, 1] (0 where the mix
        bin is silent) and applied to the complex mixture STFT, so the phase is the mix's, as in
        unmix's engine; no Wiener filtering. The whole song goes through the network at once.
        """
        samples = torch.from_numpy(np.array(mix, dtype=np.float32))
        if samples.ndim != 2 or samples.shape[0] != self.channels:
            raise ValueError(f"mix must be shaped ({self.channels}, samples), got {tuple(samples.shape)}")
        self.network.eval()
        with torch.no_grad():
            spectrum = _stft(samples, self.n_fft, self.hop_length)
            magnitude = spectrum.abs()
            estimate = self.network(magnitude[None])[0]
            mask = torch.where(magnitude > 0, estimate / magnitude.clamp_min(1e-12), 0.0).clamp(0.0, 1.0)
            target = torch.istft(
                spectrum * mask,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=torch.hann_window(self.n_fft),
                center=True,
                length=samples.shape[-1],
            )
        return target.numpy().astype(np.float32, copy=False)


def train_open_unmix(
    training: Sequence[SongAudio],
    validation: Sequence[SongAudio],
    sample_rate: int,
    budget_seconds: float,
    *,
    seed: int = 0,
    progress: bool = True,
) -> OpenUnmixRun:
    """Train Open-Unmix from scratch with its published recipe until `budget_seconds` of wall time pass.

    The clock starts on entry, so computing the input statistics and validating count against the
    budget like the steps themselves; the budget is checked after every optimiser step and every
    validation, and at least one step is always taken. The network returned holds the state with
    the lowest validation loss (the last state if `validation` is empty). `seed` seeds torch
    (weights, dropout) and the numpy generator that draws excerpts and augmentations, so that a
    run can be repeated. Thread counts are left as the caller set them.
    """
    start = time.perf_counter()
    if not training:
        raise ValueError("Open-Unmix needs at least one training song")
    channels = _check_songs([*training, *validation], sample_rate)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    n_fft, hop_length = recipe_stft_sizes(sample_rate)
    mean, std = _input_statistics(training, n_fft, hop_length)
    network = _recipe_network(sample_rate, channels, mean, std)
    optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=80, cooldown=10)

    excerpt = round(EXCERPT_SECONDS * sample_rate)
    samples_per_epoch = EXCERPTS_PER_SONG * len(training)
    steps_per_epoch = math.ceil(samples_per_epoch / BATCH_SIZE)
    best_loss: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    last_loss: float | None = None
    steps = 0
    bar = tqdm.tqdm(
        total=float(budget_seconds),
        desc="Open-Unmix",
        unit="s",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of budget{postfix}",
        disable=not progress,
    )

    def show(epoch_losses: list[float]) -> None:
        bar.n = min(time.perf_counter() - start, budget_seconds)
        shown = f"step={steps}, epoch={steps / steps_per_epoch:.2f}, loss={np.mean(epoch_losses):.4g}"
        bar.set_postfix_str(shown if last_loss is None else f"{shown}, val={last_loss:.4g}")

    def validate() -> None:
        nonlocal best_loss, best_state, last_loss
        if not validation:
            return
        last_loss = _validation_loss(network, validation, n_fft, hop_length)
        network.train()
        if best_loss is None or last_loss < best_loss:
            best_loss = last_loss
            best_state = {name: value.detach().clone() for name, value in network.state_dict().items()}

    network.train()
    out_of_time = False
    while not out_of_time:
        epoch_losses: list[float] = []
        for first in range(0, samples_per_epoch, BATCH_SIZE):
            mix, target = _training_batch(training, min(BATCH_SIZE, samples_per_epoch - first), excerpt, rng)
            optimizer.zero_grad()
            estimate = network(_stft(mix, n_fft, hop_length).abs())
            loss = torch.nn.functional.mse_loss(estimate, _stft(target, n_fft, hop_length).abs())
            loss.backward()
            optimizer.step()
            steps += 1
            epoch_losses.append(loss.item())
            show(epoch_losses)
            out_of_time = time.perf_counter() - start >= budget_seconds
            if out_of_time:
                break
        # Every pass takes at least one step, so there is always something new to validate, budget or not.
        validate()
        show(epoch_losses)
        if not out_of_time and last_loss is not None:
            scheduler.step(last_loss)
        out_of_time = out_of_time or time.perf_counter() - start >= budget_seconds
    seconds = time.perf_counter() - start
    bar.close()

    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    return OpenUnmixRun(
        network=network,
        sample_rate=sample_rate,
        channels=channels,
        n_fft=n_fft,
        hop_length=hop_length,
        epochs=steps / steps_per_epoch,
        steps=steps,
        seconds=seconds,
        best_validation_loss=best_loss,
        parameters=_trainable_parameters(network),
    )


def untrained_open_unmix(sample_rate: int, channels: int, *, seed: int = 0) -> OpenUnmixRun:
    """The recipe's network with random weights, for speed measurements: time does not depend on what it learned."""
    torch.manual_seed(seed)
    n_fft, hop_length = recipe_stft_sizes(sample_rate)
    network = _recipe_network(sample_rate, channels, None, None).eval()
    return OpenUnmixRun(network=network, sample_rate=sample_rate, channels=channels, n_fft=n_fft,
                        hop_length=hop_length, epochs=0.0, steps=0, seconds=0.0, best_validation_loss=None,
                        parameters=_trainable_parameters(network))


def recipe_stft_sizes(sample_rate: int) -> tuple[int, int]:
    """The recipe's n_fft 4096 and hop 1024 at 44.1 kHz, scaled to `sample_rate` (n_fft a power of two)."""
    n_fft = 2 ** round(math.log2(RECIPE_N_FFT * sample_rate / RECIPE_SAMPLE_RATE))
    return n_fft, n_fft // 4


def _recipe_network(sample_rate: int, channels: int, mean: np.ndarray | None, std: np.ndarray | None) -> OpenUnmix:
    """OpenUnmix as the recipe sizes it; `mean` and `std` None leave its input normalisation at 0 and 1."""
    n_fft, _ = recipe_stft_sizes(sample_rate)
    bandwidth = min(RECIPE_BANDWIDTH_HZ, sample_rate / 2)
    return OpenUnmix(
        nb_bins=n_fft // 2 + 1,
        nb_channels=channels,
        hidden_size=HIDDEN_SIZE,
        nb_layers=LSTM_LAYERS,
        unidirectional=False,
        input_mean=mean,
        input_scale=std,
        max_bin=int(bandwidth_to_max_bin(sample_rate, n_fft, bandwidth)),
    )


def _trainable_parameters(network: OpenUnmix) -> int:
    return sum(parameter.numel() for parameter in network.parameters() if parameter.requires_grad)


def _check_songs(songs: Sequence[SongAudio], sample_rate: int) -> int:
    """The songs' common channel count; a mismatch would silently train on the wrong audio."""
    channels = {song.channels for song in songs}
    if len(channels) != 1:
        raise ValueError(f"all songs must have the same channel count, got {sorted(channels)}")
    rates = {song.name: song.sample_rate for song in songs if song.sample_rate != sample_rate}
    if rates:
        raise ValueError(f"songs not at {sample_rate} Hz: {rates}")
    return channels.pop()


def _stft(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT (..., bins, frames) of (..., samples): centred, zero padded, periodic Hann."""
    flat = audio.reshape(-1, audio.shape[-1])
    spectrum = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        window=torch.hann_window(n_fft),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spectrum.reshape(*audio.shape[:-1], *spectrum.shape[-2:])


def _input_statistics(songs: Sequence[SongAudio], n_fft: int, hop_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation of the mixtures' channel-averaged magnitudes, over all frames."""
    total = torch.zeros(n_fft // 2 + 1, dtype=torch.float64)
    squares = torch.zeros_like(total)
    frames = 0
    with torch.no_grad():
        for song in songs:
            mix = torch.from_numpy(np.asarray(song.target, dtype=np.float32) + np.asarray(song.rest, dtype=np.float32))
            magnitude = _stft(mix, n_fft, hop_length).abs().mean(0).double()
            total += magnitude.sum(-1)
            squares += magnitude.square().sum(-1)
            frames += magnitude.shape[-1]
    mean = total / frames
    std = (squares / frames - mean.square()).clamp_min(0.0).sqrt()
    std = torch.maximum(std, 1e-4 * std.max())
    return mean.numpy(), std.numpy()


def _excerpt(audio: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random `length`-sample excerpt of (channels, samples) audio, the whole of it zero padded if shorter."""
    offset = int(rng.integers(0, max(audio.shape[-1] - length, 0) + 1))
    piece = np.array(audio[:, offset:offset + length], dtype=np.float32)
    if piece.shape[-1] < length:
        piece = np.pad(piece, ((0, 0), (0, length - piece.shape[-1])))
    return piece


def _augmented_source(audio: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """An excerpt with the recipe's source augmentations: a random gain and, for stereo, a random channel swap."""
    piece = _excerpt(audio, length, rng) * np.float32(rng.uniform(*GAIN_RANGE))
    if piece.shape[0] == 2 and rng.random() < 0.5:
        piece = piece[::-1]
    return piece


def _training_batch(
    songs: Sequence[SongAudio], size: int, length: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mix, target) batches (size, channels, length), each example remixed from two random songs."""
    targets = []
    rests = []
    for _ in range(size):
        targets.append(_augmented_source(songs[rng.integers(len(songs))].target, length, rng))
        rests.append(_augmented_source(songs[rng.integers(len(songs))].rest, length, rng))
    target = torch.from_numpy(np.stack(targets))
    return target + torch.from_numpy(np.stack(rests)), target


def _validation_loss(network: OpenUnmix, songs: Sequence[SongAudio], n_fft: int, hop_length: int) -> float:
    """Mean over songs of the magnitude MSE on whole, unaugmented songs with their true mixes."""
    network.eval()
    losses = []
    with torch.no_grad():
        for song in songs:
            target = torch.from_numpy(np.array(song.target, dtype=np.float32))
            mix = target + torch.from_numpy(np.array(song.rest, dtype=np.float32))
            estimate = network(_stft(mix, n_fft, hop_length).abs()[None])
            losses.append(torch.nn.functional.mse_loss(estimate, _stft(target, n_fft, hop_length).abs()[None]).item())
    return float(np.mean(losses))
