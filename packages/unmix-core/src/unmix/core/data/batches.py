"""The training batch source: numpy batches of (input, target) windows, made on the fly.

Framework-neutral: it yields float32 numpy arrays (batch, bins, frames, channels), and the
backends wrap it (a tf.data generator, a torch IterableDataset) without knowing how it works.
What the seed's DataGenerator did wrong and what this does instead (docs/original-system.md §4.5 and §9.16):

- Nothing song-sized is ever computed. An item is one window: its excerpt of the memory-mapped
  stems is read (`unmix.core.data.windows.read_excerpt`), optionally augmented, and only the STFT
  frames of that window are computed. Memory is the prefetch queue plus the open songs, whatever
  the number or length of the songs.
- Songs given as loaders (objects with `.load() -> SongAudio`, such as cache entries) are opened
  on demand and only a few are kept open (`open_songs`), because the pages a memory map has read
  count towards the process's resident memory until the map is closed. Songs given as
  `SongAudio` are used as they are.
- Batches are built by a pool of worker threads, `prefetch` batches ahead of the consumer, so the
  model does not wait for data. Threads rather than processes: numpy's FFT and array arithmetic
  release the GIL, and most of an item's time is the FFT. benchmarks/bench_data.py measures it
  (numbers in benchmarks/README.md): two threads make more windows than one, with the workers a
  consumer rarely waits for data (without them it waits for every batch), and forked worker
  processes, which pickle every batch back, were slower than the threads, besides the hazard of
  forking a process that holds a TensorFlow or CUDA runtime.
- Peak memory is the imports, `prefetch` batches, and the pages read from at most `open_songs`
  memory-mapped songs (clean file pages the kernel can reclaim, but counted as resident).
- The epoch's order is computed once, vectorised, instead of the seed's quadratic np.append loop,
  and nothing is re-read at the end of an epoch.
- Deterministic: the order of epoch e comes from (seed, e) and the augmentation of the item at
  position p from (seed, e, p), so a batch is the same whichever thread builds it and however
  many workers there are.

The item order follows the seed: each song's windows (or the middle `limit_items_per_song` of
them), shuffled within the song when `transformation.options.shuffle`, songs in order; then the
whole list shuffled when `training.epoch.shuffle`. The last incomplete batch is dropped, as the
seed's `__len__ = items // batch_size` did, unless `drop_remainder=False`.

For a waveform transform (`Transform.kind == "waveform"`) an item is a chunk of `size` samples
instead: (channels, size) of the mix and of the target, no STFT. Chunk k of a song starts at
`k * step` (the separation engine's grid), moved by a random number of samples below `step` when
`random_offsets` (training), so that over the epochs a chunk may start at any sample, not only
where separation cuts; validation chunks stay on the grid. Chunks are kept inside the song when
it is long enough. Order, threads, augmentation and determinism are the windows'.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs
import numpy as np

from unmix.core.data.augmentation import Augmenter
from unmix.core.data.tracks import SongAudio
from unmix.core.data.windows import (
    chunk_indices,
    excerpt_spectrogram,
    read_excerpt,
    read_excerpt_at_speed,
    song_frame_count,
    window_first_frame,
    window_indices,
    window_span,
)
from unmix.core.errors import UnmixError

if TYPE_CHECKING:
    from unmix.core.config.schema import Configuration
    from unmix.core.data.transforms import Transform

__all__ = ["BatchSource", "SongLoader", "default_workers"]


@runtime_checkable
class SongLoader(Protocol):
    """Anything that opens a song's audio when asked, e.g. an entry of the training-data cache.

    A loader that also has integer `frames` (samples per stem), `channels` and `sample_rate`
    attributes, as `unmix.core.data.cache.CachedSong` does, is not opened to build the epoch index.
    """

    def load(self) -> SongAudio: ...


@attrs.frozen
class _SongFacts:
    """What the index needs to know of a song."""

    name: str
    samples: int
    channels: int
    sample_rate: int


def default_workers() -> int:
    """One worker thread per CPU core, at most 8: beyond that the model's own threads need the cores."""
    return max(1, min(8, os.cpu_count() or 1))


class _OpenSongs:
    """The few most recently used songs that were given as loaders, kept open between items."""

    def __init__(self, songs: Sequence[SongAudio | SongLoader], capacity: int) -> None:
        self._songs = songs
        self._capacity = max(1, capacity)
        self._open: collections.OrderedDict[int, SongAudio] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, index: int) -> SongAudio:
        song = self._songs[index]
        if isinstance(song, SongAudio):
            return song
        with self._lock:
            audio = self._open.get(index)
            if audio is not None:
                self._open.move_to_end(index)
                return audio
        # Opened outside the lock: two threads may open the same song at once, which is harmless
        # and cheaper than making every other song wait.
        audio = song.load()
        with self._lock:
            self._open[index] = audio
            self._open.move_to_end(index)
            while len(self._open) > self._capacity:
                self._open.popitem(last=False)
        return audio

    def clear(self) -> None:
        with self._lock:
            self._open.clear()


class BatchSource:
    """Batches of training windows from a list of songs, for any backend.

    Iterate it for one epoch of `len(source)` batches (each new iteration is the next epoch), or
    ask for `epoch(number)` or for single batches with `batch(epoch, index)` (for map-style
    adapters such as a Keras PyDataset, which bring their own workers). `batch_shapes` gives the
    input and target shapes for declaring a tf.data signature before the first batch exists.
    Use it as a context manager, or call `close()`, to release the open songs.
    """

    def __init__(
        self,
        songs: Sequence[SongAudio | SongLoader],
        transform: Transform,
        configuration: Configuration,
        *,
        seed: int = 0,
        workers: int | None = None,
        prefetch: int | None = None,
        augment: bool | None = None,
        shuffle_songs: bool | None = None,
        shuffle_windows: bool | None = None,
        limit_items_per_song: int | None = None,
        batch_size: int | None = None,
        drop_remainder: bool = True,
        open_songs: int | None = None,
        random_offsets: bool = True,
    ) -> None:
        """`songs` in a fixed order (the split's); `None` options come from the configuration.

        `workers` 0 builds batches in the consumer's thread (no pool). `prefetch` is how many
        batches may be built or waiting ahead of the consumer (default twice the workers).
        `augment` defaults to `augmentation.enabled`; pass False for validation data.
        `shuffle_songs`/`shuffle_windows` default to `training.epoch.shuffle` and
        `transformation.options.shuffle`. `open_songs` bounds how many loader-given songs stay
        open (default workers + 2, so each worker's song and the next ones stay mapped).
        `random_offsets` moves waveform chunks off their grid at random (pass False for validation
        data); spectrogram windows always sit on theirs.
        """
        if not songs:
            raise UnmixError("there are no songs to train on; check collection.folder and the split settings")
        self.songs = songs
        self.transform = transform
        self.seed = int(seed)
        self.fft_length = configuration.spectrogram_generation.fft_length
        self.hop_length = configuration.hop_length
        self.channels = configuration.channels
        self.sample_rate = configuration.collection.sample_rate
        self.batch_size = int(batch_size or configuration.training.batch_size)
        self.workers = default_workers() if workers is None else max(0, int(workers))
        self.prefetch = max(1, int(prefetch) if prefetch is not None else 2 * max(1, self.workers))
        self.drop_remainder = drop_remainder
        self.shuffle_songs = configuration.training.epoch.shuffle if shuffle_songs is None else shuffle_songs
        self.shuffle_windows = (
            configuration.transformation.options.shuffle if shuffle_windows is None else shuffle_windows
        )
        limit = configuration.training.limit_items_per_song if limit_items_per_song is None else limit_items_per_song
        augmenter = Augmenter.from_configuration(configuration)
        self.augmenter = augmenter if augment is None else attrs.evolve(augmenter, enabled=augment)
        self.bins = self.fft_length // 2 + 1
        self.waveform = transform.kind == "waveform"
        self.random_offsets = random_offsets and self.waveform
        self._open_songs = _OpenSongs(songs, open_songs if open_songs is not None else self.workers + 2)
        self._next_epoch = 0
        self._cached_items: tuple[int, np.ndarray] | None = None
        self._items_lock = threading.Lock()

        # The index: per song its length and the range of windows used. Opening a memory-mapped
        # song only reads its header, so this is cheap even for thousands of songs.
        lengths = np.zeros(len(songs), dtype=np.int64)
        first_windows = np.zeros(len(songs), dtype=np.int64)
        window_counts = np.zeros(len(songs), dtype=np.int64)
        for song_index in range(len(songs)):
            facts = self._check_song(self._song_facts(song_index))
            lengths[song_index] = facts.samples
            if self.waveform:
                windows = chunk_indices(facts.samples, transform.size, transform.step, limit)
            else:
                frames = song_frame_count(facts.samples, self.hop_length)
                windows = window_indices(frames, transform.size, transform.step, limit)
            first_windows[song_index] = windows.start
            window_counts[song_index] = len(windows)
        self._open_songs.clear()
        self.song_lengths = lengths
        self._first_windows = first_windows
        self._window_counts = window_counts

    # ---- shape of an epoch --------------------------------------------------------------

    @property
    def item_count(self) -> int:
        """Windows per epoch."""
        return int(self._window_counts.sum())

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_remainder:
            return self.item_count // self.batch_size
        return -(-self.item_count // self.batch_size)

    @property
    def batch_shapes(self) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
        """Shapes of a full batch's (inputs, targets); both float32."""
        input_shape = self.transform.input_shape(self.bins, self.channels)
        target_shape = self.transform.target_shape(self.bins, self.channels)
        return (self.batch_size, *input_shape), (self.batch_size, *target_shape)

    def epoch_items(self, epoch: int) -> np.ndarray:
        """The epoch's items in order: int64 (items, 2) rows of (song index, window index)."""
        counts = self._window_counts
        song_ids = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        starts = np.cumsum(counts) - counts
        window_ids = np.arange(len(song_ids), dtype=np.int64) - np.repeat(starts, counts)
        window_ids += np.repeat(self._first_windows, counts)
        rng = np.random.default_rng([self.seed, int(epoch)])
        if self.shuffle_windows:
            # Sorting by song, then by a random key, shuffles each song's windows in place.
            order = np.lexsort((rng.random(len(song_ids)), song_ids))
            song_ids, window_ids = song_ids[order], window_ids[order]
        if self.shuffle_songs:
            order = rng.permutation(len(song_ids))
            song_ids, window_ids = song_ids[order], window_ids[order]
        return np.stack([song_ids, window_ids], axis=1)

    # ---- items and batches --------------------------------------------------------------

    def make_item(
        self, song_index: int, window_index: int, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(input, target) of one window; `rng` drives the augmentation (none without it)."""
        if self.waveform:
            return self._make_chunk(song_index, window_index, rng)
        song = self._open_songs.get(song_index)
        size = self.transform.size
        span = window_span(
            window_first_frame(window_index, size, self.transform.step),
            size,
            song.frames,
            self.fft_length,
            self.hop_length,
        )
        augment = rng is not None and self.augmenter.enabled and not span.is_empty
        target, rest = self._stems(song_index, span.sample_start, span.sample_count, rng if augment else None)
        # Mix and target go through one FFT call: stacked as 2 * channels rows.
        stacked = np.concatenate([target + rest, target])
        spectrogram = excerpt_spectrogram(stacked, span, self.fft_length, self.hop_length)
        return self.transform.training_pair(spectrogram[: self.channels], spectrogram[self.channels:])

    def _make_chunk(
        self, song_index: int, chunk_index: int, rng: np.random.Generator | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mix, target) samples of one waveform chunk, augmented as a window would be."""
        size, step = self.transform.size, self.transform.step
        start = chunk_index * step
        if rng is not None and self.random_offsets:
            start += int(rng.integers(step))
        start = min(start, max(int(self.song_lengths[song_index]) - size, 0))
        target, rest = self._stems(song_index, start, size, rng if self.augmenter.enabled else None)
        return self.transform.training_pair(target + rest, target)

    def _stems(self, song_index: int, start: int, count: int, rng: np.random.Generator | None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(target, rest) samples of an excerpt, augmented when `rng` is given: the plan decides
        where the rest comes from and how fast each stem is read, then scales and swaps them."""
        song = self._open_songs.get(song_index)
        if rng is None:
            return read_excerpt(song.target, start, start + count), read_excerpt(song.rest, start, start + count)
        plan = self.augmenter.plan(rng, song_index, self.song_lengths, count, self.channels)
        rest_song, rest_start = (song, start) if plan.remix_song is None else (
            self._open_songs.get(plan.remix_song), plan.remix_offset)
        target = read_excerpt_at_speed(song.target, start, count, plan.target_speed)
        rest = read_excerpt_at_speed(rest_song.rest, rest_start, count, plan.rest_speed)
        return plan.apply(target, rest)

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch `index` of epoch `epoch`, computed in the calling thread."""
        epoch = int(epoch)
        with self._items_lock:
            # Map-style adapters ask for every batch of an epoch in turn: order the epoch once.
            if self._cached_items is None or self._cached_items[0] != epoch:
                self._cached_items = (epoch, self.epoch_items(epoch))
            items = self._cached_items[1]
        return self._build(items, epoch, int(index))

    def epoch(self, number: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of epoch `number`, built by the worker threads ahead of the consumer."""
        items = self.epoch_items(number)
        batches = len(self)
        if self.workers == 0:
            for index in range(batches):
                yield self._build(items, number, index)
            return
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="unmix-batches")
        pending: collections.deque[Future[tuple[np.ndarray, np.ndarray]]] = collections.deque()
        try:
            submitted = 0
            while submitted < batches and len(pending) < self.prefetch:
                pending.append(executor.submit(self._build, items, number, submitted))
                submitted += 1
            while pending:
                ready = pending.popleft().result()
                if submitted < batches:
                    pending.append(executor.submit(self._build, items, number, submitted))
                    submitted += 1
                yield ready
        finally:
            # Reached when the epoch ends, and also when the consumer stops early or a worker
            # raised: then queued batches are dropped and the threads wind down on their own,
            # without making the consumer wait for the batches being built.
            for future in pending:
                future.cancel()
            executor.shutdown(wait=not pending, cancel_futures=True)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        number = self._next_epoch
        self._next_epoch += 1
        return self.epoch(number)

    def close(self) -> None:
        self._open_songs.clear()

    def __enter__(self) -> BatchSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _build(self, items: np.ndarray, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        start = index * self.batch_size
        stop = min(start + self.batch_size, len(items))
        if not 0 <= start < stop:
            raise IndexError(f"batch {index} is outside the epoch's {len(self)} batches")
        input_shape, target_shape = self.batch_shapes
        inputs = np.empty((stop - start, *input_shape[1:]), dtype=np.float32)
        targets = np.empty((stop - start, *target_shape[1:]), dtype=np.float32)
        random_items = self.augmenter.enabled or self.random_offsets
        for row, position in enumerate(range(start, stop)):
            song_index, window_index = (int(value) for value in items[position])
            rng = np.random.default_rng([self.seed, epoch, position]) if random_items else None
            inputs[row], targets[row] = self.make_item(song_index, window_index, rng)
        return inputs, targets

    def _song_facts(self, song_index: int) -> _SongFacts:
        song = self.songs[song_index]
        known = [getattr(song, key, None) for key in ("frames", "channels", "sample_rate")]
        if not isinstance(song, SongAudio) and all(isinstance(value, int) for value in known):
            return _SongFacts(str(getattr(song, "name", song_index)), *known)
        audio = self._open_songs.get(song_index)
        if audio.target.ndim != 2 or audio.target.shape != audio.rest.shape:
            raise UnmixError(
                f"song '{audio.name}' ({audio.collection}): its target {audio.target.shape} and rest "
                f"{audio.rest.shape} are not two (channels, samples) arrays of one shape; regenerate the training data"
            )
        return _SongFacts(audio.name, audio.frames, audio.channels, audio.sample_rate)

    def _check_song(self, song: _SongFacts) -> _SongFacts:
        if song.channels != self.channels:
            raise UnmixError(
                f"song '{song.name}' has {song.channels} channel(s) but collection.stereo is "
                f"{str(self.channels == 2).lower()}; regenerate the training data with {self.channels} channel(s) "
                "or change the setting"
            )
        if song.sample_rate != self.sample_rate:
            raise UnmixError(
                f"song '{song.name}' is at {song.sample_rate} Hz but collection.sample_rate is "
                f"{self.sample_rate}; regenerate the training data at {self.sample_rate} Hz or change the setting"
            )
        return song
