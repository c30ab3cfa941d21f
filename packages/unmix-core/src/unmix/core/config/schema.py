"""The configuration keys, their types, defaults and allowed ranges, as attrs classes.

Key names are the seed's (docs/original-system.md §2), so the original configuration files load
unchanged; defaults are the seed's master.jsonc values. Keys new in unmix: `collection.target`,
`collection.dataset`, `spectrogram_generation.hop_length`, `training.distribution`,
`training.backend`, `training.initial_weights`, `training.freeze`, `prediction.*` and `augmentation.*`.

Each field's metadata carries its bounds (`minimum`, `maximum`) and `choices`; the loader in
`unmix.core.config.loader` checks them and reports the dotted key and the file that set it.

Some of the seed's keys are inert: validated, so that the original files load unchanged, but read
by nothing in unmix. Their metadata says why (`inert`); `inert_keys()` lists them and `unmix config
check` warns when a configuration file sets one.
"""

import typing
from typing import Any

import attrs


def setting(
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
    choices: tuple[Any, ...] | None = None,
    inert: str | None = None,
) -> Any:
    """A configuration field with the bounds the loader enforces (`below` is an exclusive maximum).

    `inert` marks a key kept only so that the seed's files load: it gives the reason unmix does not read it.
    """
    metadata = {"minimum": minimum, "maximum": maximum, "below": below, "choices": choices, "inert": inert}
    if isinstance(default, (list, dict)):
        return attrs.field(factory=lambda: type(default)(default), metadata=metadata)
    return attrs.field(default=default, metadata=metadata)


def section(cls: type) -> Any:
    return attrs.field(factory=cls)


RUN_FOLDER_LAYOUT = "the run folder's layout is fixed (weights/, plots/)"
DEBUG_OUTPUT = "the seed's debug output of training windows is not written"
NO_ZMUV = "zmuv normalisation is not supported (zmuv.enabled: true is refused)"
LOG_VERBOSITY = "unmix's log and progress bar replace Keras' verbosity levels"
EPOCH_METRICS_ONLY = "unmix's TensorBoard logs hold the epoch metrics only"


@attrs.frozen
class Weights:
    folder: str = setting("weights", inert=RUN_FOLDER_LAYOUT)
    file: str = setting("weights.h5", inert="checkpoints are always weights/best and weights/last")


@attrs.frozen
class Environment:
    # A display name for people reading the file (as `collection.name`): read by nothing, but it
    # promises no behaviour, so it is not marked inert and setting it is not warned about.
    name: str = setting("")
    output_path: str = setting("runs")
    log_file: str = setting("logs.txt")
    plot_folder: str = setting("plots", inert=RUN_FOLDER_LAYOUT)
    temp_folder: str = setting("temp", inert="downloads go to the system's temporary folder; " + DEBUG_OUTPUT)
    weights: Weights = section(Weights)


@attrs.frozen
class CollectionFolder:
    """One dataset of a ratio mix (splitstrument's `collection.folders`)."""

    path: str = setting("")
    ratio: float = setting(1.0, minimum=0.0)


@attrs.frozen
class Collection:
    name: str = setting("")
    folder: str = setting("data")
    folders: list[CollectionFolder] = setting([])
    # Which stem is the instrument to extract; files are named `<target>_<song>.<ext>`.
    target: str = setting("vocals")
    # Dataset layout plugin: "auto" picks the layout from the files found.
    dataset: str = setting("auto")
    sample_rate: int = setting(22050, minimum=1000, maximum=384000)
    stereo: bool = setting(False)
    song_limit: float = setting(0, minimum=0)
    validation_ratio: float = setting(0.2, minimum=0.0, below=1.0)
    test_data_count: int = setting(0, minimum=0)
    test_frequency: int = setting(0, minimum=0)
    test_save_count: int = setting(1, minimum=0, inert="the accuracy tests during training write no audio")


@attrs.frozen
class SpectrogramGeneration:
    fft_length: int = setting(1536, minimum=16)
    # None means fft_length // 4, the seed's (librosa's) hop.
    hop_length: int | None = setting(None, minimum=1)


@attrs.frozen
class TransformationOptions:
    size: int = setting(64, minimum=1)
    step: int = setting(64, minimum=1)
    shuffle: bool = setting(True)
    normalizer: str = setting("norm_max", choices=("norm_max", "norm_min_max", ""))
    save_audio: bool = setting(False, inert=DEBUG_OUTPUT)
    save_image: bool = setting(False, inert=DEBUG_OUTPUT)


@attrs.frozen
class Zmuv:
    enabled: bool = setting(False)
    mode: str = setting("frequency_bin", choices=("frequency_bin", "single"), inert=NO_ZMUV)
    mix_file: str = setting("", inert=NO_ZMUV)
    vocals_file: str = setting("", inert=NO_ZMUV)


@attrs.frozen
class Normalizers:
    zmuv: Zmuv = section(Zmuv)


@attrs.frozen
class Transformation:
    name: str = setting("train_window_predict_mask")
    options: TransformationOptions = section(TransformationOptions)
    normalizers: Normalizers = section(Normalizers)


@attrs.frozen
class Epoch:
    count: int = setting(10000, minimum=1)
    shuffle: bool = setting(False)


@attrs.frozen
class Optimizer:
    name: str = setting("adam")
    lr: float = setting(1e-4, minimum=0.0)


@attrs.frozen
class Model:
    name: str = setting("hourglass")
    # Model-specific; each model plugin validates its own options.
    options: dict[str, Any] = setting({})


@attrs.frozen
class ModelCheckpoint:
    enabled: bool = setting(True)
    file_name: str = setting("callback_weights_{epoch:02d}.h5")
    monitor: str = setting("val_loss")
    best_only: bool = setting(True)
    weights_only: bool = setting(False, inert="checkpoints always hold what resuming and prediction need")
    mode: str = setting("auto", choices=("auto", "min", "max"))
    period: int = setting(1, minimum=1, inert="the checkpoints are considered after every epoch")
    verbose: int = setting(1, minimum=0, maximum=2, inert=LOG_VERBOSITY)


@attrs.frozen
class Tensorboard:
    enabled: bool = setting(True)
    folder: str = setting("./TensorBoard")
    histogram_freq: int = setting(0, minimum=0, inert=EPOCH_METRICS_ONLY)
    write_graph: bool = setting(True, inert=EPOCH_METRICS_ONLY)
    write_grads: bool = setting(False, inert=EPOCH_METRICS_ONLY)
    write_images: bool = setting(False, inert=EPOCH_METRICS_ONLY)
    embeddings_freq: int = setting(0, minimum=0, inert=EPOCH_METRICS_ONLY)
    update_freq: str | int = setting("batch", inert="TensorBoard logs are written once per epoch")


@attrs.frozen
class CsvLogger:
    enabled: bool = setting(True)
    file_name: str = setting("results.csv")
    separator: str = setting(";")
    append: bool = setting(True, inert="each run has its own results.csv, continued when the run is resumed")


@attrs.frozen
class EarlyStopping:
    enabled: bool = setting(True)
    monitor: str = setting("val_loss")
    min_delta: float = setting(0.00001, minimum=0.0)
    patience: int = setting(20, minimum=0)
    verbose: int = setting(1, minimum=0, maximum=2, inert=LOG_VERBOSITY)


@attrs.frozen
class ReduceLearningRate:
    enabled: bool = setting(False)
    monitor: str = setting("val_loss")
    factor: float = setting(0.2, minimum=0.0, below=1.0)
    patience: int = setting(5, minimum=0)
    min_learningrate: float = setting(0.001, minimum=0.0)


@attrs.frozen
class CosineLearningRate:
    """Not in the seed: the rate falls from optimizer.lr to min_learningrate along half a cosine over the
    training's length: its epochs, or its time limit when that comes first."""

    enabled: bool = setting(False)
    min_learningrate: float = setting(1e-5, minimum=0.0)


@attrs.frozen
class Callbacks:
    model_checkpoint: ModelCheckpoint = section(ModelCheckpoint)
    tensorboard: Tensorboard = section(Tensorboard)
    csv_logger: CsvLogger = section(CsvLogger)
    early_stopping: EarlyStopping = section(EarlyStopping)
    reduce_learningrate: ReduceLearningRate = section(ReduceLearningRate)
    cosine_learningrate: CosineLearningRate = section(CosineLearningRate)


@attrs.frozen
class Training:
    epoch: Epoch = section(Epoch)
    # Not in the seed: training ends once its epochs have taken this many minutes of wall time (training,
    # validation and checkpoints; not the start-up), at the next batch, with a last validation and
    # checkpoint. 0: no limit. A resumed run counts the minutes it had already trained.
    time_limit_minutes: float = setting(0.0, minimum=0.0)
    limit_items_per_song: int = setting(0, minimum=0)
    verbose: int = setting(1, minimum=0, maximum=2, inert=LOG_VERBOSITY)
    metrics: list[str] = setting(["mean_pred"])
    batch_size: int = setting(8, minimum=1)
    loss_function: str = setting("L11_loss")
    optimizer: Optimizer = section(Optimizer)
    model: Model = section(Model)
    callbacks: Callbacks = section(Callbacks)
    distribution: str = setting("none", choices=("none", "mirrored", "multi_worker", "ddp"))
    # Which framework trains the model: models are registered per backend as "<backend>:<name>".
    backend: str = setting("tensorflow")
    # Fine-tuning (unmix.core.training.fine_tuning): a new run starts from the network weights of this run
    # folder (its best checkpoint, else its last) or checkpoint file, with a fresh optimiser. A relative
    # path is taken from the folder of the configuration file that sets it. "" starts from random weights.
    initial_weights: str = setting("")
    # Weights that are not trained: parameter names (torch) or layer names (Keras), each naming itself
    # and everything below it ("layers.1" is "layers.1.*", not "layers.10").
    freeze: list[str] = setting([])


@attrs.frozen
class Prediction:
    batch_size: int = setting(16, minimum=1)
    format: str = setting("wav")
    filename: str = setting("{song}_{stem}.{ext}")
    bit_depth: str = setting("16", choices=("16", "24", "float"))
    bitrate_kbps: int = setting(192, minimum=32, maximum=320)
    # Peaks above full scale: "clip" them (with a warning; float wav keeps them), or "normalize" both stems
    # of a song by one common gain, so that they still add up to the input times that gain.
    peak: str = setting("clip", choices=("clip", "normalize"))
    # Seconds of audio separated at a time: memory depends on this, not on the song's length. Each
    # segment also reads a few seconds of context on both sides, so longer segments waste less.
    chunk_seconds: float = setting(120.0, minimum=1.0)


@attrs.frozen
class Augmentation:
    """Training-time augmentation in the style of Open-Unmix and Demucs; off unless enabled."""

    enabled: bool = setting(False)
    gain_min: float = setting(0.25, minimum=0.0)
    gain_max: float = setting(1.25, minimum=0.0)
    channel_swap: bool = setting(True)
    remix_probability: float = setting(0.5, minimum=0.0, maximum=1.0)
    pitch_semitones: float = setting(0.0, minimum=0.0, maximum=12.0)


@attrs.frozen
class Configuration:
    environment: Environment = section(Environment)
    collection: Collection = section(Collection)
    spectrogram_generation: SpectrogramGeneration = section(SpectrogramGeneration)
    transformation: Transformation = section(Transformation)
    training: Training = section(Training)
    prediction: Prediction = section(Prediction)
    augmentation: Augmentation = section(Augmentation)

    @property
    def hop_length(self) -> int:
        return self.spectrogram_generation.hop_length or self.spectrogram_generation.fft_length // 4

    @property
    def channels(self) -> int:
        return 2 if self.collection.stereo else 1


def inert_keys(cls: type = Configuration, prefix: str = "") -> dict[str, str]:
    """Every inert key below `cls`, dotted, with the reason unmix does not read it, in schema order.

    The one list the warnings of `unmix config check` and the documentation are checked against.
    """
    hints = typing.get_type_hints(cls)
    found: dict[str, str] = {}
    for field in attrs.fields(cls):
        dotted = f"{prefix}.{field.name}" if prefix else field.name
        if attrs.has(hints[field.name]):
            found.update(inert_keys(hints[field.name], dotted))
        elif field.metadata.get("inert"):
            found[dotted] = field.metadata["inert"]
    return found
