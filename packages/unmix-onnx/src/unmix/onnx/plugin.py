"""The entry point: the `onnxruntime` runtime for .onnx model files, and the `unmix export` command.

Loaded by every `unmix` command, so it imports neither onnxruntime nor onnx.
"""

from __future__ import annotations

from typing import Any

from unmix.core.hookspecs import Register, hookimpl


@hookimpl
def register_runtimes(register: Register) -> None:
    from unmix.onnx.runtime import OnnxRuntime

    register("onnxruntime", OnnxRuntime())


@hookimpl
def register_commands(cli: Any) -> None:
    from unmix.onnx.export import export_command

    cli.add_command(export_command)
