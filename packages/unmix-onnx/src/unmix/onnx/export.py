"""`unmix export`: a trained run as one self-describing ONNX file that separates without the framework.

The run's backend writes the graph (`unmix.core.ExportableModel.export_onnx`: PyTorch's or Keras's
exporter), this module adds the metadata (`unmix.onnx.metadata`) and moves the file into place
whole, then loads it back on onnxruntime and compares its output with the framework's on the same
random inputs, so a bad export is caught here and not by a listener.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click

from unmix.core import __version__ as unmix_version
from unmix.core.errors import UnmixError
from unmix.onnx import metadata

if TYPE_CHECKING:
    from unmix.core.separation.prediction import Engine

FORMATS = ("onnx",)
_CHECK_BATCH = 2


@attrs.frozen
class Exported:
    """Where the file went and how closely onnxruntime reproduced the framework on random inputs."""

    path: Path
    model: str
    graph: str
    largest_difference: float
    """Largest absolute difference of the outputs, over the framework output's largest magnitude."""


def export_run(run_folder: str | Path, output: str | Path | None = None, *, overwrite: bool = False) -> Exported:
    """Write `run_folder`'s best checkpoint as an ONNX file (default: RUN/export/<run name>.onnx)."""
    # Imported here: the plugin registers this module's command for every `unmix` call, --help included.
    from unmix.core.interfaces import ExportableModel
    from unmix.core.runs import open_run_folder
    from unmix.core.separation.prediction import load_engine, run_model_files

    run = open_run_folder(run_folder)
    target = Path(output) if output is not None else run.exported_model(".onnx")
    _check_output(target, overwrite)
    files = run_model_files(run)
    engine = load_engine(files)
    model = engine.model
    name = f"{files.settings.training.backend}:{files.settings.training.model.name}"
    if not isinstance(model, ExportableModel):
        raise UnmixError(f"run '{run.path}': its model {name} cannot be exported to ONNX (its backend's model has "
                         "no export_onnx); models built with unmix's torch or Keras kits can")
    with tempfile.TemporaryDirectory(prefix="unmix-export-") as temporary:
        graph_file = Path(temporary) / "network.onnx"
        graph = dict(model.export_onnx(graph_file))
        properties = {
            metadata.FORMAT: metadata.FORMAT_VERSION,
            metadata.UNMIX_VERSION: unmix_version,
            metadata.RUN: run.name,
            metadata.MODEL: name,
            metadata.KIND: "waveform" if engine.transform.kind == "waveform" else "spectrogram",
            metadata.TARGET: files.settings.collection.target,
            metadata.SAMPLE_RATE: str(files.settings.collection.sample_rate),
            metadata.CHANNELS: str(files.settings.channels),
            metadata.INPUT_SHAPE: json.dumps(list(files.input_shape or ())),
            metadata.PARAMETERS: str(model.trainable_parameters()),
            metadata.GRAPH: json.dumps(graph),
            metadata.CONFIGURATION: json.dumps(files.loaded.data),
        }
        _write_with_metadata(graph_file, target, properties)
    difference = largest_difference(engine, target)
    return Exported(target, name, graph["graph"], difference)


def _check_output(target: Path, overwrite: bool) -> None:
    if target.suffix != ".onnx":
        raise UnmixError(f"export file '{target}' must end in .onnx, which is how `unmix predict --model` "
                         "picks the runtime; give --output NAME.onnx")
    if target.is_dir():
        raise UnmixError(f"export file '{target}' is a folder; give --output a file name ending in .onnx")
    if target.exists() and not overwrite:
        raise UnmixError(f"export file '{target}' already exists; pass --overwrite to replace it, or choose another "
                         "--output")


def _write_with_metadata(graph_file: Path, target: Path, properties: dict[str, str]) -> None:
    from unmix.core.files import atomic_path

    try:
        import onnx
    except ImportError:
        raise UnmixError("unmix export needs the onnx package to write the file's metadata: "
                         "pip install 'unmix-onnx[export]'") from None
    proto = onnx.load(str(graph_file))
    # set_model_props replaces every entry: the exporter's own are kept, earlier unmix ones are not.
    kept = {entry.key: entry.value for entry in proto.metadata_props if not entry.key.startswith(metadata.PREFIX)}
    onnx.helper.set_model_props(proto, {**kept, **properties})
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary:
        onnx.save(proto, str(temporary))


def largest_difference(engine: Engine, exported: Path) -> float:
    """Framework against onnxruntime on the same random inputs of the model's shape."""
    import numpy as np

    from unmix.onnx.runtime import OnnxRuntime

    onnx_model = OnnxRuntime().load(exported, engine.settings)
    rng = np.random.default_rng(0)
    shape = (_CHECK_BATCH, *onnx_model.input_shape)
    inputs = (rng.uniform(-0.5, 0.5, shape) if engine.transform.kind == "waveform" else rng.uniform(0, 1, shape))
    expected = engine.predict(inputs.astype(np.float32))
    found = onnx_model.predict(inputs.astype(np.float32))
    scale = max(float(np.abs(expected).max()), 1e-12)
    return float(np.abs(found - expected).max()) / scale


@click.command("export")
@click.option("--run-folder", required=True, type=click.Path(), help="A run folder made by `unmix train`.")
@click.option("--format", "format_name", type=click.Choice(FORMATS), default="onnx", show_default=True,
              help="The file format.")
@click.option("--output", type=click.Path(),
              help="The file to write [default: RUN/export/<run name>.onnx, which `unmix predict --run-folder RUN` "
                   "then uses].")
@click.option("--overwrite", is_flag=True, help="Replace the output file if it exists.")
def export_command(run_folder: str, format_name: str, output: str | None, overwrite: bool) -> None:
    """Write a run's best checkpoint as one file that separates on onnxruntime alone.

    The file carries the run's configuration, so `unmix predict --model FILE` needs nothing else,
    and no TensorFlow or PyTorch: unmix-core, unmix-cli, unmix-sources and unmix-onnx (README, Packages).
    """
    exported = export_run(run_folder, output, overwrite=overwrite)
    size = exported.path.stat().st_size / 1e6
    click.echo(f"exported {exported.model} ({exported.graph} graph) to {exported.path} ({size:.1f} MB); "
               f"onnxruntime matches the framework within {exported.largest_difference:.1e} of its output's peak "
               "on random inputs")
    if output is None:
        click.echo(f"`unmix predict --run-folder {run_folder}` now separates with it (faster on a CPU than the "
                   "framework); --engine framework uses the framework")
